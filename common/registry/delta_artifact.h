// How a delta lives in an OCI registry (docs/registry.md): the schema both
// `deltasend publish` and the pull-mode receiver speak, and nothing else.
//
// A delta from one basis to a target is an OCI image manifest (image-spec
// 1.1 artifact) in the target's repository:
//   artifactType  application/vnd.deltasync.delta.v1
//   config        application/vnd.deltasync.delta.config.v1+json: the JSON
//                 below (which target and base, by manifest and config
//                 digest and diff_ids; the bundle's digest and size)
//   layers        the bundle (docs/bundle-format.md) cut into parts of
//                 part_size bytes (application/vnd.deltasync.bundle.part.v1),
//                 each fetched, resumed and verified alone
//   subject       the target's per-platform image manifest
//   annotations   io.deltasync.base.config / .base.manifest / .target.config
// Discovery, for registries with and without the referrers API:
//   - GET /v2/<repo>/referrers/<target manifest> where it answers;
//   - else the referrers tag schema of distribution-spec 1.1: tag
//     "sha256-<hex of the target manifest>" holds an OCI index listing the
//     referrers (publish keeps it current);
//   - and one deterministic tag per (target, base): delta_tag().
//
// Value types and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/registry/registry_client.h"
#include "common/util/result.h"

namespace deltasync {

inline constexpr const char* kDeltaArtifactType = "application/vnd.deltasync.delta.v1";
inline constexpr const char* kDeltaConfigMediaType =
    "application/vnd.deltasync.delta.config.v1+json";
inline constexpr const char* kBundlePartMediaType = "application/vnd.deltasync.bundle.part.v1";
inline constexpr const char* kAnnotationBaseConfig = "io.deltasync.base.config";
inline constexpr const char* kAnnotationBaseManifest = "io.deltasync.base.manifest";
inline constexpr const char* kAnnotationTargetConfig = "io.deltasync.target.config";
inline constexpr const char* kAnnotationBundleSize = "io.deltasync.bundle.size";
// The format of the config below; readers refuse a newer one by name.
inline constexpr int kDeltaArtifactFormat = 1;
// Default size of a bundle part: one part is what a cut costs at most.
inline constexpr uint64_t kDefaultPartBytes = 8ull << 20;

struct DeltaImageSide {
  std::string reference;                  // "app:1.0.0" as the build host named it (informational)
  std::optional<Digest> manifest_digest;  // per-platform manifest, when known
  Digest config_digest;
  std::vector<Digest> diff_ids;
};

struct DeltaArtifactConfig {
  int format = kDeltaArtifactFormat;
  uint32_t bundle_format = 0;
  DeltaImageSide target;
  DeltaImageSide base;   // config_digest zero: no basis (not published)
  Digest bundle_digest;  // sha256 of the whole bundle file
  uint64_t bundle_size = 0;
  uint64_t part_size = kDefaultPartBytes;

  std::string to_json() const;  // deterministic (sorted keys)
  // kCorrupt naming what is wrong; kUnsupported for a newer format.
  static Result<DeltaArtifactConfig> parse(std::string_view json);
};

// The artifact manifest, as pushed and as read back.
struct DeltaArtifactManifest {
  RegistryDescriptor config;
  std::vector<RegistryDescriptor> parts;
  RegistryDescriptor subject;
  std::map<std::string, std::string> annotations;

  std::string to_json() const;  // deterministic
  // kCorrupt unless it is an image manifest of kDeltaArtifactType with a
  // config of kDeltaConfigMediaType and parts of kBundlePartMediaType.
  static Result<DeltaArtifactManifest> parse(std::string_view json);
};

// The deterministic tag of the delta for (target manifest, base config):
// "ds-delta-<48 hex>-<48 hex>" (tags are at most 128 characters).
std::string delta_tag(const Digest& target_manifest, const Digest& base_config);
// The referrers tag schema's tag for a subject: "sha256-<hex>".
std::string referrers_tag(const Digest& subject);

// An OCI index (the referrers tag schema's list): `existing` ("" for none)
// with `entry` added, replacing an entry of the same digest. kCorrupt if
// `existing` is not an index.
Result<std::string> add_to_referrers_index(const std::string& existing,
                                           const RegistryDescriptor& entry);
// The OCI index listing `entries`, in that order (deterministic bytes).
std::string referrers_index_json(const std::vector<RegistryDescriptor>& entries);
// The descriptors of an OCI index (referrers API answer or tag schema).
Result<std::vector<RegistryDescriptor>> parse_index_descriptors(std::string_view json);
// The same, for what a referrers tag holds before publish rewrites it: it
// must be an OCI index (by the registry's Content-Type or its mediaType),
// else kCorrupt naming what it is, so that publish never replaces an image
// someone tagged there (distribution-spec 1.1: report, do not overwrite).
Result<std::vector<RegistryDescriptor>> parse_referrers_tag_index(const RegistryManifest& held);

// The subject a manifest of any artifact type names: kCorrupt when the body
// is not a JSON object or has no subject descriptor.
Result<RegistryDescriptor> manifest_subject(std::string_view manifest_json);
// Why `entry`, listed in the referrers tag index of `subject`, does not
// belong there, given `manifest`, the manifest it names as fetched by its
// digest; nullopt when it does. It must be an image manifest or index
// (OCI, or Docker's manifest) whose subject is `subject`, of the size the entry says, and for
// entries claiming kDeltaArtifactType, a delta manifest that parses. Other
// artifact types (signatures, SBOMs) with the right subject belong there.
std::optional<std::string> referrer_entry_problem(const RegistryDescriptor& entry,
                                                  const RegistryManifest& manifest,
                                                  const Digest& subject);

}  // namespace deltasync
