#include "sender/diffimage/link_groups.h"

#include <optional>
#include <unordered_map>

namespace deltasync {

namespace {

struct ContentId {
  uint32_t layer;
  uint64_t entry;
  auto operator<=>(const ContentId&) const = default;
};

// Entry ordinals by path, for the layers that hold hard links.
class LayerPaths {
 public:
  explicit LayerPaths(const LayerIndex& layer) {
    for (const FileRecord& r : layer.entries) by_path_[r.path].push_back(r.entry_index);
  }
  // The last entry named `path` before ordinal `before`.
  std::optional<uint64_t> last_before(const std::string& path, uint64_t before) const {
    auto it = by_path_.find(path);
    if (it == by_path_.end()) return std::nullopt;
    std::optional<uint64_t> found;
    for (uint64_t i : it->second) {
      if (i >= before) break;
      found = i;
    }
    return found;
  }

 private:
  std::unordered_map<std::string, std::vector<uint64_t>> by_path_;
};

}  // namespace

std::vector<std::string> LinkGroups::members(const std::string& path) const {
  auto it = group_of.find(path);
  if (it == group_of.end()) return {path};
  return groups[it->second].paths;
}

LinkGroups find_link_groups(const ImageTree& tree, const std::vector<const LayerIndex*>& layers) {
  std::map<uint32_t, LayerPaths> paths_of_layer;
  auto resolve = [&](const FileRecord& link) -> std::optional<ContentId> {
    if (link.layer >= layers.size()) return std::nullopt;
    const LayerIndex& layer = *layers[link.layer];
    auto it = paths_of_layer.find(link.layer);
    if (it == paths_of_layer.end())
      it = paths_of_layer.emplace(link.layer, LayerPaths(layer)).first;
    std::string target = link.link_target;
    uint64_t before = link.entry_index;
    // A link to a link (not written by Docker or GNU tar, but valid) is
    // followed back to the regular file; ordinals only decrease, so it ends.
    while (true) {
      auto found = it->second.last_before(target, before);
      if (!found || *found >= layer.entries.size()) return std::nullopt;
      const FileRecord& entry = layer.entries[*found];
      if (entry.kind == FileKind::kRegular) return ContentId{link.layer, *found};
      if (entry.kind != FileKind::kHardlink) return std::nullopt;
      target = entry.link_target;
      before = *found;
    }
  };

  std::map<ContentId, std::vector<std::string>> members;
  std::map<ContentId, bool> has_link;
  for (const auto& [path, record] : tree.files) {
    std::optional<ContentId> id;
    if (record.kind == FileKind::kRegular) {
      id = ContentId{record.layer, record.entry_index};
    } else if (record.kind == FileKind::kHardlink) {
      // A dangling link (no earlier entry of that name) is a group of its own.
      id = resolve(record).value_or(ContentId{record.layer, record.entry_index});
      has_link[*id] = true;
    }
    if (id) members[*id].push_back(path);
  }

  LinkGroups out;
  for (auto& [id, paths] : members) {
    if (paths.size() < 2 && !has_link[id]) continue;
    LinkGroup group;
    group.layer = id.layer;
    group.content_entry = id.entry;
    const FileRecord& content = layers[id.layer]->entries[id.entry];
    auto it = tree.files.find(content.path);
    group.content_path_present = it != tree.files.end() && it->second.layer == id.layer &&
                                 it->second.entry_index == id.entry;
    group.paths = std::move(paths);  // tree order: sorted
    for (const auto& p : group.paths) out.group_of[p] = out.groups.size();
    out.groups.push_back(std::move(group));
  }
  return out;
}

}  // namespace deltasync
