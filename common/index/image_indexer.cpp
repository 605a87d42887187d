#include "common/index/image_indexer.h"

namespace deltasync {

Result<const LayerIndex*> LayerIndexCache::get(ImageReader& image, size_t i) {
  const LayerInfo& layer = image.info().layers.at(i);
  if (auto it = cache_.find(layer.diff_id); it != cache_.end()) return it->second.get();
  std::string name = "layer " + std::to_string(i + 1) + " (" + layer.diff_id.short_str() + ") of " +
                     image.describe();
  DS_ASSIGN_OR_RETURN(auto source, image.open_layer(i));
  DS_ASSIGN_OR_RETURN(LayerIndex index, build_layer_index(*source, layer.diff_id, name));
  ++layers_read_;
  bytes_read_ += index.tar_size;
  auto owned = std::make_unique<LayerIndex>(std::move(index));
  const LayerIndex* ptr = owned.get();
  cache_.emplace(layer.diff_id, std::move(owned));
  return ptr;
}

Result<std::vector<const LayerIndex*>> LayerIndexCache::all(ImageReader& image) {
  std::vector<const LayerIndex*> out;
  for (size_t i = 0; i < image.info().layers.size(); ++i) {
    DS_ASSIGN_OR_RETURN(const LayerIndex* index, get(image, i));
    out.push_back(index);
  }
  return out;
}

}  // namespace deltasync
