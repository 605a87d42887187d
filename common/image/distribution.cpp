#include "common/image/distribution.h"

namespace deltasync {

std::vector<size_t> DistributionIdentity::unreproducible_layers() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layers[i].reproducible()) out.push_back(i + 1);
  }
  return out;
}

uint64_t DistributionIdentity::unreproducible_bytes() const {
  uint64_t total = 0;
  for (const auto& layer : layers) {
    if (!layer.reproducible()) total += layer.blob.size;
  }
  return total;
}

std::string DistributionIdentity::describe() const {
  bool is_index = target.digest != manifest_digest;
  return std::string(is_index ? "index " : "manifest ") + target.digest.str() +
         (platform.empty() ? "" : " (" + platform + ")");
}

}  // namespace deltasync
