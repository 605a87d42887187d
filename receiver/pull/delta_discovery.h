// Finding the deltas a registry offers for a target manifest
// (common/registry/delta_artifact.h): the referrers API where the registry
// answers it, else the referrers tag schema's index, and, when those list
// no delta from a basis the caller holds (by the io.deltasync.base.config
// annotation), the deterministic tag of each basis it holds. Each offer is read in full (artifact
// manifest and config, both verified by digest), so the caller can tell
// whether it holds the offer's base before fetching any part.
//
// Thread safety: uses the borrowed client from the calling thread only.
#pragma once

#include <string>
#include <vector>

#include "common/registry/delta_artifact.h"
#include "common/registry/registry_client.h"

namespace deltasync {

struct DeltaOffer {
  Digest manifest_digest;
  DeltaArtifactManifest manifest;
  DeltaArtifactConfig config;
  std::string found_by;  // "referrers API", "referrers tag", "delta tag"
};

// `local_configs`: config digests of images the site holds (for the
// deterministic tags; at most kMaxTagProbes are tried). Offers whose
// artifact is malformed are skipped with a warning, not fatal.
Result<std::vector<DeltaOffer>> discover_deltas(RegistryClient& client,
                                                const std::string& repository,
                                                const Digest& subject,
                                                const std::vector<Digest>& local_configs);

inline constexpr size_t kMaxTagProbes = 64;

}  // namespace deltasync
