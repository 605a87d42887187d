// An image as a registry holds it: the tag (or digest) resolved to this
// platform's image manifest, its config (verified) and its layer blobs.
// Shared by `deltasend publish` (does the registry hold the target?) and the
// pull-mode receiver (what to fetch, what to verify).
//
// Thread safety: uses the borrowed client from the calling thread only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/registry/registry_client.h"

namespace deltasync {

struct RegistryImage {
  // What the reference named: an index/list, or the manifest itself.
  RegistryManifest named;
  // This platform's image manifest (== named when it is one).
  RegistryManifest manifest;
  std::string platform;  // "linux/amd64"
  std::string config;    // exact bytes; digest checked
  Digest config_digest;
  std::vector<Digest> diff_ids;            // the config's rootfs.diff_ids
  std::vector<RegistryDescriptor> layers;  // the manifest's layer blobs, same order
};

// Resolves `reference` (tag or digest) in `repository`. `platform`
// "os/arch[/variant]" picks from an index ("" = linux/<this host's arch>).
// nullopt when the registry has no such tag or digest. kCorrupt when the
// manifest or config is malformed, or their layer counts differ;
// kNotFound when an index has no manifest for the platform (naming those it
// has); kUnsupported for schema 1 manifests.
Result<std::optional<RegistryImage>> resolve_registry_image(RegistryClient& client,
                                                            const std::string& repository,
                                                            const std::string& reference,
                                                            const std::string& platform = "");

// "linux/amd64" for this host (Go's names: amd64, arm64, arm/v7, ...).
std::string host_platform();

}  // namespace deltasync
