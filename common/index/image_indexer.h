// Indexes every layer of an image (see layer_index.h), sharing work across
// images: a layer already in the cache (same diff_id) is not read again,
// which is what makes comparing two versions of an image cheap when they
// share their base layers.
//
// Thread safety: a LayerIndexCache belongs to one thread.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "common/image/image.h"
#include "common/index/image_tree.h"
#include "common/index/layer_index.h"

namespace deltasync {

class LayerIndexCache {
 public:
  // Returns the index of layer `i` of `image`, reading it if not cached.
  Result<const LayerIndex*> get(ImageReader& image, size_t i);
  // Indexes all layers of `image`, in order.
  Result<std::vector<const LayerIndex*>> all(ImageReader& image);
  uint64_t layers_read() const { return layers_read_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  std::map<Digest, std::unique_ptr<LayerIndex>> cache_;
  uint64_t layers_read_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace deltasync
