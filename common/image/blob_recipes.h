// Rebuilding compressed layer blobs byte for byte (distribution.h).
//
// find_blob_recipes() runs on the sender, which holds both the layer tar and
// the blob: for each gzip layer it compresses the tar with each installed Go
// gzip flavor (common/codec/go_gzip.h) and compares the output with the blob
// as it streams, so a wrong flavor is rejected within its first block and
// the right one costs one compression of the layer. rebuild_blob() runs on
// the site: the named flavor, then the digest and size the manifest gives.
// A sender that found no recipe leaves the layer without one; the site then
// keeps the content identity and says which layer made the Id differ.
//
// Thread safety: free functions; the reader is used from the calling thread.
#pragma once

#include <cstdint>
#include <filesystem>

#include "common/codec/go_gzip.h"
#include "common/image/image.h"

namespace deltasync {

struct RecipeSearch {
  size_t layers_tried = 0;  // compressed layers looked at
  size_t layers_reproduced = 0;
  size_t layers_from_cache = 0;  // of those, proved by an earlier run
  uint64_t plain_bytes = 0;      // uncompressed bytes fed to the compressors
  double seconds = 0;
};

// Fills identity.layers[i].recipe where an installed flavor reproduces the
// blob. `reader` must be the image `identity` was read from. With a
// `cache_dir`, a proof is kept there (one small file per blob digest, named
// by it) and reused by later runs: a blob and a flavor are both content
// addresses, so the answer never changes. The site checks every blob anyway.
Result<RecipeSearch> find_blob_recipes(ImageReader& reader, DistributionIdentity& identity,
                                       const GoGzip& gzip,
                                       const std::filesystem::path& cache_dir = {});

// Writes layer's blob rebuilt from `tar` (its uncompressed layer) to `out`
// and checks it: kUnsupported when this site has no helper of the recipe's
// flavor, kVerifyFailed when the result is not the blob.
Status rebuild_blob(const DistributionLayer& layer, ByteSource& tar, ByteSink& out,
                    const GoGzip& gzip);

}  // namespace deltasync
