// Writes a planned diff layer (layer_plan.h) as a tar: each entry's header
// copied from TARGET's layer (or retyped, or a whiteout), its payload copied
// from TARGET's layer file, then the two zero blocks that end an archive (no
// record padding, as Docker's own layers). Streams; memory does not grow with
// the layer.
//
// Thread safety: none; reads the layer files with pread.
#pragma once

#include <cstdint>
#include <vector>

#include "common/crypto/digest.h"
#include "common/io/stream.h"
#include "sender/diffimage/layer_plan.h"

namespace deltasync {

struct WrittenLayer {
  Digest diff_id;  // sha256 of the tar
  uint64_t size = 0;
};

// `layer_fds[i]`: an open descriptor of TARGET's uncompressed layer i, for
// every layer in plan.payload_layers() (others may be -1).
Result<WrittenLayer> write_diff_layer(const DiffLayerPlan& plan,
                                      const std::vector<const LayerIndex*>& target_layers,
                                      const std::vector<int>& layer_fds, ByteSink& out);

}  // namespace deltasync
