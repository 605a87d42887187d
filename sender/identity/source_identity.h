// What the sender tells a site about the image's distribution identity
// (common/image/distribution.h): the documents of the OCI layout it read the
// image from and, per compressed layer, the Go gzip flavor it proved
// rebuilds the blob byte for byte (common/image/blob_recipes.h). A site on
// Docker's containerd image store then ends with the build host's Id.
//
// Thread safety: none; call from the thread that owns the reader.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/image/blob_recipes.h"
#include "common/image/image.h"

namespace deltasync {

struct SourceIdentity {
  // The build host's Id of the image: the target digest when it was read
  // from an OCI layout, else the config digest.
  std::string image_id;
  std::optional<DistributionIdentity> distribution;  // recipes filled in
  RecipeSearch search;
  std::string encoded;  // ImageDescription.distribution_zstd; empty without one

  // Whether a containerd-backed site can end with `image_id`.
  bool reproducible() const {
    return distribution && distribution->reproducible() &&
           image_id == distribution->target.digest.str();
  }
  // One line for people: what a site on each store ends with.
  std::string summary() const;
};

// deltasend's cache directory: `flag` (--cache-dir) if given, else
// $XDG_CACHE_HOME/deltasync, else ~/.cache/deltasync.
std::filesystem::path sender_cache_dir(const std::string& flag);

// Reads `reader`'s distribution identity and proves the blob recipes
// (kept under CACHE/recipes/ for later runs). `require_same_id`
// (--require-same-id) turns "some blob cannot be rebuilt" into an error
// naming the layers and what shipping their blobs would cost.
Result<SourceIdentity> prepare_source_identity(ImageReader& reader, bool require_same_id,
                                               const std::filesystem::path& cache_dir = {});

}  // namespace deltasync
