#include "common/index/image_tree.h"

namespace deltasync {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

std::string_view base_name(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string parent_dir(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

// Removes every path strictly below `dir` ("" means the root).
void erase_children(std::map<std::string, FileRecord>& files, const std::string& dir) {
  if (dir.empty()) {
    files.clear();
    return;
  }
  std::string prefix = dir + "/";
  auto it = files.lower_bound(prefix);
  while (it != files.end() && it->first.compare(0, prefix.size(), prefix) == 0)
    it = files.erase(it);
}

}  // namespace

ImageTree build_image_tree(const std::vector<const LayerIndex*>& layers) {
  ImageTree tree;
  auto& files = tree.files;
  for (uint32_t layer_number = 0; layer_number < layers.size(); ++layer_number) {
    const LayerIndex* layer = layers[layer_number];
    // Deletions apply to the layers beneath, so handle them first.
    for (const FileRecord& r : layer->entries) {
      std::string_view base = base_name(r.path);
      if (base == kOpaqueMarker) {
        erase_children(files, parent_dir(r.path));
      } else if (base.starts_with(kWhiteoutPrefix)) {
        std::string dir = parent_dir(r.path);
        std::string victim =
            (dir.empty() ? "" : dir + "/") + std::string(base.substr(kWhiteoutPrefix.size()));
        files.erase(victim);
        erase_children(files, victim);
      }
    }
    for (const FileRecord& r : layer->entries) {
      std::string_view base = base_name(r.path);
      if (base.starts_with(kWhiteoutPrefix) || r.path.empty()) continue;
      auto existing = files.find(r.path);
      if (existing != files.end() && existing->second.kind == FileKind::kDirectory &&
          r.kind != FileKind::kDirectory) {
        erase_children(files, r.path);
      }
      FileRecord copy = r;
      copy.layer = layer_number;
      if (r.kind == FileKind::kHardlink) {
        auto target = files.find(r.link_target);
        if (target != files.end()) {
          copy.size = target->second.size;
          copy.digest = target->second.digest;
        }
      }
      files[r.path] = std::move(copy);
    }
  }
  return tree;
}

}  // namespace deltasync
