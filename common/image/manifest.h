// The documents that describe an image inside an archive or layout: docker's
// manifest.json, the OCI index.json / image index / image manifest, and the
// image config. They are parsed here (nlohmann-json, exceptions caught at
// this boundary) into an ImageLayout, which names the config and layer
// members, and then into the ImageInfo every reader hands out.
//
// Every JSON member is size-checked (kMaxJsonBytes) before it is read, every
// content-addressed blob is checked against its digest, and every failure is
// kCorrupt / kUnsupported / kNotFound with a message naming the document.
//
// Thread safety: free functions; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/digest.h"
#include "common/image/archive_index.h"
#include "common/image/image.h"

namespace deltasync {

constexpr size_t kMaxJsonBytes = 16 << 20;

struct ImageLayout {
  struct Layer {
    std::string member;
    std::optional<uint64_t> size;  // from an OCI descriptor
    std::string media_type;        // empty for docker's manifest.json
  };
  std::string config_member;
  std::optional<Digest> config_digest;  // when the layout names the config by digest
  std::optional<uint64_t> config_size;
  std::vector<Layer> layers;
  std::vector<std::string> tags;
  std::string document;  // where this came from, for messages ("manifest.json", ...)
};

// A docker-archive: manifest.json when present (legacy and OCI-in-tar
// layouts), else index.json (newer OCI-in-tar without manifest.json).
// `selector` picks one image when the archive holds several (by tag).
// `platform` ("linux/arm64", "linux/arm/v7"; empty: this host's) picks one
// image of a multi-platform index.
Result<ImageLayout> read_docker_archive_layout(MemberStore& store, std::string_view selector,
                                               std::string_view platform = "");
// An OCI image layout: index.json, then nested image indexes down to one
// manifest. `selector` matches org.opencontainers.image.ref.name or
// io.containerd.image.name; nested indexes pick this host's platform.
Result<ImageLayout> read_oci_layout(MemberStore& store, std::string_view selector,
                                    std::string_view platform = "");
// Reads the config the layout names and checks it against the layout.
Result<ImageInfo> read_image_info(MemberStore& store, const ImageLayout& layout);

// The distribution identity of the image `info` describes, when the store
// is an OCI layout (index.json) holding a manifest that names info's
// config: the index.json entry (matching `selector` when given) is the
// target; documents are the target's index, the manifest and the
// attestation manifests (and their blobs) referring to it. nullopt when the
// store has no such manifest (a docker-archive of the classic store).
Result<std::optional<DistributionIdentity>> read_distribution_identity(MemberStore& store,
                                                                       const ImageInfo& info,
                                                                       std::string_view selector);

// The config's rootfs.diff_ids, in order.
Result<std::vector<Digest>> parse_config_diff_ids(std::string_view config_bytes);

// "docker.io/library/app:1" -> "app:1"; "app" -> "app:latest".
std::string familiar_reference(std::string_view name);
// Whether a user's selector names `name` ("app" matches "docker.io/library/app:latest").
bool reference_matches(std::string_view selector, std::string_view name);
// "amd64", "arm64", ...: the platform preferred in multi-platform indexes.
std::string_view host_architecture();

}  // namespace deltasync
