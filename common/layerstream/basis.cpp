#include "common/layerstream/basis.h"

#include <algorithm>

#include "common/index/index_codec.h"

namespace deltasync {

std::string path_base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Basis Basis::build(const std::vector<const LayerIndex*>& layers, size_t dictionary_limit,
                   size_t digest_bytes) {
  Basis basis;
  basis.digest_bytes_ = std::min<size_t>(digest_bytes, 32);
  basis.tree_ = build_image_tree(layers);
  for (const auto& [path, record] : basis.tree_.files) basis.entries_.push_back(&record);
  std::sort(basis.entries_.begin(), basis.entries_.end(),
            [](const FileRecord* a, const FileRecord* b) {
              return a->layer != b->layer ? a->layer < b->layer : a->entry_index < b->entry_index;
            });
  for (uint32_t i = 0; i < basis.entries_.size(); ++i) basis.entry_ids_[basis.entries_[i]] = i;

  for (uint32_t layer_number = 0; layer_number < layers.size(); ++layer_number) {
    basis.layer_diff_ids_.push_back(layers[layer_number]->diff_id);
    for (const FileRecord& r : layers[layer_number]->entries) {
      if (r.kind != FileKind::kRegular || r.size == 0) continue;
      auto [it, inserted] =
          basis.content_ids_.emplace(truncate_digest(r.digest, basis.digest_bytes_),
                                     static_cast<uint32_t>(basis.contents_.size()));
      if (!inserted) continue;
      basis.contents_.push_back(
          BasisContent{r.digest, r.size, layer_number, r.payload_offset, r.path});
      basis.contents_by_name_[path_base_name(r.path)].push_back(it->second);
    }
  }

  // The dictionary: the most recent headers matter most (zstd finds near
  // matches cheapest), so when over the limit keep the last ones.
  size_t total = 0;
  size_t first = basis.entries_.size();
  while (first > 0 && total + basis.entries_[first - 1]->raw_metadata.size() <= dictionary_limit) {
    total += basis.entries_[--first]->raw_metadata.size();
  }
  basis.dictionary_.reserve(total);
  for (size_t i = first; i < basis.entries_.size(); ++i)
    basis.dictionary_ += basis.entries_[i]->raw_metadata;
  return basis;
}

const FileRecord* Basis::find_path(const std::string& path) const {
  auto it = tree_.files.find(path);
  return it == tree_.files.end() ? nullptr : &it->second;
}

int64_t Basis::entry_id(const FileRecord* record) const {
  auto it = entry_ids_.find(record);
  return it == entry_ids_.end() ? int64_t{-1} : static_cast<int64_t>(it->second);
}

int64_t Basis::content_id(const Digest& digest) const {
  auto it = content_ids_.find(truncate_digest(digest, digest_bytes_));
  return it == content_ids_.end() ? int64_t{-1} : static_cast<int64_t>(it->second);
}

bool Basis::same_content(const Digest& basis_digest, const Digest& target_digest) const {
  return truncate_digest(basis_digest, digest_bytes_) ==
         truncate_digest(target_digest, digest_bytes_);
}

const std::vector<uint32_t>* Basis::contents_named(const std::string& base_name) const {
  auto it = contents_by_name_.find(base_name);
  return it == contents_by_name_.end() ? nullptr : &it->second;
}

}  // namespace deltasync
