// The fallback when no delta fits: an ordinary pull of the layers the site
// lacks, through the same registry client, then the same verification and
// load as a delta (common/load/image_loader.h). Each blob is fetched into
// the pull directory (resumable, blob_fetch.h), checked against its digest,
// decompressed into a scratch workspace and checked against its diff_id;
// the config was checked against its digest when it was read. Nothing is
// loaded unless every layer verifies.
//
// On the classic store and Podman, the leading layers some engine image
// already holds are not fetched (the load lists them only). On a
// containerd-backed engine every layer is fetched: its load needs each layer
// of the archive (Docker's store), and the registry's compressed blobs are
// not the uncompressed ones deltasync loads (containerd).
//
// With a store (borrowed, may be null), the fetched layers and the config
// are kept there afterwards (keep_in_store.h), as the basis of the next delta.
//
// Thread safety: uses the borrowed clients from the calling thread only.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"
#include "common/registry/registry_image.h"
#include "common/store/layer_store.h"
#include "receiver/pull/blob_fetch.h"

namespace deltasync {

struct FullPullResult {
  std::string engine_id;
  size_t layers_fetched = 0;
  size_t layers_reused = 0;  // held by the engine already
  BlobFetchStats fetch;
};

Result<FullPullResult> full_pull(RegistryClient& client, const std::string& repository,
                                 const RegistryImage& image, EngineClient& engine,
                                 const std::vector<std::string>& tags,
                                 const std::filesystem::path& pull_dir, int attempts,
                                 LayerStore* store = nullptr);

}  // namespace deltasync
