// The extra layer of a diff image.
//
// The layer goes on top of BASE's layers and must make the overlay show
// exactly TARGET's root file system: every path with TARGET's kind, content,
// link target, mode, owner, mtime and xattrs, and TARGET's hard links. It is
// built from the file-level diff of the two trees (directory mtimes
// included), in five steps:
//
// 1. Paths. Every path added, changed (content, type, link target) or
//    changed in metadata only is in the layer, with TARGET's header.
// 2. Hard links. A layer's hard link can only name a file of the same layer,
//    and two paths are one inode only if they are linked inside one layer.
//    So any path in the layer brings its whole TARGET link group, and a path
//    left out keeps its BASE inode, shared with those of its BASE partners
//    also left out: unless they are exactly its TARGET partners (a new link
//    to an unchanged file, a link broken up), it goes in too. Repeated until
//    nothing is added. A group is written as its content entry (a regular
//    file) then hard links to it; when the path of that entry is gone from
//    TARGET, the first member becomes the regular file and the others link
//    to it.
// 3. Parents. Every directory above an entry of the layer is in it too, with
//    TARGET's header, as in Docker's own layers: applying the layer then
//    sets each directory's mode, owner and mtime (which the new or removed
//    child changed) to TARGET's. Directories TARGET has no entry for (made
//    implicitly by the runtime) get none.
// 4. Deletions. A removed path gets a ".wh.NAME" whiteout unless an ancestor
//    already hides it: a removed ancestor (one whiteout for a deleted
//    directory, not one per child) or an ancestor that TARGET has as a
//    non-directory (a directory replaced by a file hides its children; a
//    file replaced by a directory needs no whiteout either, the directory
//    entry replaces it). When a directory's whole TARGET subtree is in the
//    layer anyway and two or more whiteouts fall below it, one
//    ".wh..wh..opq" marker replaces them (outermost such directory first;
//    never the root, which overlay file systems do not make opaque). The
//    parents of these entries are added as in step 3.
// 5. Order. Directories before their contents, names sorted; files of 32 KiB
//    or more after all the small entries (so that headers and small files
//    sit within deflate's 32 KiB window of each other when the layer is
//    gzipped for a registry: 0.1% of this layer in the e2e test); hard links
//    last, after every file they may name. The same inputs always give the
//    same entries, so the layer (and its diff_id) is reproducible.
//
// Headers are TARGET's header blocks byte for byte (PAX records, xattrs such
// as security.capability, sub-second mtimes, uname/gname), so nothing is
// recomputed; only the hard links of step 2 whose content entry is gone are
// rewritten (header_edit.h).
#include "sender/diffimage/layer_plan.h"

#include <algorithm>
#include <map>

#include "common/tar/tar_entry.h"
#include "sender/diffimage/link_groups.h"

namespace deltasync {

namespace {

constexpr std::string_view kOpaqueName = ".wh..wh..opq";
constexpr uint64_t kLargePayload = 32 << 10;  // deflate's window

std::string parent_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(path.substr(0, slash));
}

std::string_view name_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

}  // namespace

bool PlannedEntry::is_hardlink() const {
  return (op == Op::kCopy || op == Op::kRetype) && type == '1';
}

bool layer_order_less(std::string_view a, std::string_view b) {
  while (true) {
    if (a.empty() || b.empty()) return a.empty() && !b.empty();
    size_t sa = a.find('/'), sb = b.find('/');
    std::string_view ca = a.substr(0, sa), cb = b.substr(0, sb);
    if (ca != cb) {
      if (ca == kOpaqueName) return true;
      if (cb == kOpaqueName) return false;
      return ca < cb;
    }
    a = sa == std::string_view::npos ? std::string_view() : a.substr(sa + 1);
    b = sb == std::string_view::npos ? std::string_view() : b.substr(sb + 1);
  }
}

std::set<uint32_t> DiffLayerPlan::payload_layers() const {
  std::set<uint32_t> out;
  for (const auto& e : entries)
    if (e.payload_size > 0) out.insert(e.payload_layer);
  return out;
}

DiffLayerPlan plan_diff_layer(const ImageTree& base,
                              const std::vector<const LayerIndex*>& base_layers,
                              const ImageTree& target,
                              const std::vector<const LayerIndex*>& target_layers) {
  using Why = PlannedEntry::Why;
  using Op = PlannedEntry::Op;
  DiffLayerPlan plan;
  DiffOptions options;
  options.include_directory_mtime = true;
  plan.diff = diff_image_trees(base, target, options);

  // 1. Paths that differ.
  std::map<std::string, Why> include;
  std::set<std::string> removed;
  for (const FileChange& c : plan.diff.changes) {
    switch (c.change) {
      case ChangeKind::kAdded:
        include.emplace(c.path, Why::kAdded);
        break;
      case ChangeKind::kChanged:
        include.emplace(c.path, Why::kChanged);
        break;
      case ChangeKind::kMetadata:
        include.emplace(c.path, Why::kMetadata);
        break;
      case ChangeKind::kRemoved:
        removed.insert(c.path);
        break;
    }
  }

  // 2. Hard-link groups, to a fixed point: a group in the layer is whole; a
  // path left out keeps its BASE inode, shared with the BASE partners also
  // left out, which must be exactly its TARGET partners.
  LinkGroups target_groups = find_link_groups(target, target_layers);
  LinkGroups base_groups = find_link_groups(base, base_layers);
  std::set<std::string> linked;  // paths in a group in either image
  for (const auto& [p, g] : target_groups.group_of) linked.insert(p);
  for (const auto& [p, g] : base_groups.group_of)
    if (target.files.count(p)) linked.insert(p);
  std::set<size_t> groups_written;
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& p : linked) {
      if (include.count(p)) continue;
      std::vector<std::string> keeps;  // BASE partners still sharing p's inode
      for (const auto& q : base_groups.members(p))
        if (target.files.count(q) && !include.count(q)) keeps.push_back(q);
      if (keeps != target_groups.members(p)) grew |= include.emplace(p, Why::kLinkGroup).second;
    }
    for (const auto& [p, why] : include) {
      auto it = target_groups.group_of.find(p);
      if (it == target_groups.group_of.end() || !groups_written.insert(it->second).second) continue;
      for (const auto& q : target_groups.groups[it->second].paths) {
        if (!include.count(q)) {
          include.emplace(q, Why::kLinkGroup);
          grew = true;
        }
      }
    }
  }

  // 3. Parents of those paths.
  auto add_parents = [&](const std::string& path) {
    for (std::string a = parent_of(path); !a.empty(); a = parent_of(a)) {
      if (target.files.count(a)) include.emplace(a, Why::kParent);
    }
  };
  std::vector<std::string> paths_so_far;
  for (const auto& [path, why] : include) paths_so_far.push_back(path);
  for (const auto& p : paths_so_far) add_parents(p);

  // 4. Deletions, and their parents.
  auto hidden_by_ancestor = [&](const std::string& path) {
    for (std::string a = parent_of(path); !a.empty(); a = parent_of(a)) {
      if (removed.count(a)) return true;
      auto it = target.files.find(a);
      if (it != target.files.end() && it->second.kind != FileKind::kDirectory) return true;
    }
    return false;
  };
  std::vector<std::string> whiteouts;  // the removed paths that need one
  for (const auto& p : removed)
    if (!hidden_by_ancestor(p)) whiteouts.push_back(p);
  std::map<std::string, size_t> whiteouts_below;
  for (const auto& w : whiteouts) {
    for (std::string a = parent_of(w); !a.empty(); a = parent_of(a)) ++whiteouts_below[a];
  }
  std::set<std::string> opaque;
  for (const auto& [dir, count] : whiteouts_below) {  // ancestors come first
    if (count < 2) continue;
    auto it = target.files.find(dir);
    if (it == target.files.end() || it->second.kind != FileKind::kDirectory) continue;
    bool inside_opaque = false;
    for (std::string a = dir; !a.empty(); a = parent_of(a)) inside_opaque |= opaque.count(a) > 0;
    if (inside_opaque) continue;
    bool all_in_layer = true;
    const std::string prefix = dir + "/";
    for (auto c = target.files.lower_bound(prefix); c != target.files.end(); ++c) {
      if (!c->first.starts_with(prefix)) break;
      if (!include.count(c->first)) {
        all_in_layer = false;
        break;
      }
    }
    if (all_in_layer) opaque.insert(dir);
  }
  std::vector<std::string> deletion_entries;
  for (const auto& w : whiteouts) {
    bool inside_opaque = false;
    for (std::string a = parent_of(w); !a.empty(); a = parent_of(a))
      inside_opaque |= opaque.count(a) > 0;
    if (!inside_opaque)
      deletion_entries.push_back(join(parent_of(w), ".wh." + std::string(name_of(w))));
  }
  for (const auto& d : opaque) deletion_entries.push_back(join(d, kOpaqueName));

  for (const auto& d : deletion_entries) add_parents(d);

  // The entries: paths (hard-link groups as described above), deletions.
  std::map<std::string, PlannedEntry> by_path;
  auto copy_entry = [&](const std::string& path, Why why) {
    const FileRecord& record = target.files.at(path);
    const FileRecord& entry = target_layers[record.layer]->entries[record.entry_index];
    PlannedEntry e;
    e.op = Op::kCopy;
    e.why = why;
    e.path = path;
    e.layer = record.layer;
    e.entry = record.entry_index;
    e.type = record.kind == FileKind::kHardlink ? '1' : '0';
    e.link_target = record.kind == FileKind::kHardlink ? record.link_target : std::string();
    e.payload_layer = record.layer;
    e.payload_offset = entry.payload_offset;
    e.payload_size = record.kind == FileKind::kHardlink ? 0 : entry.size;
    return e;
  };
  for (const auto& [path, why] : include) {
    if (target_groups.group_of.count(path)) continue;
    by_path[path] = copy_entry(path, why);
  }
  for (size_t g : groups_written) {
    const LinkGroup& group = target_groups.groups[g];
    const FileRecord& content = target_layers[group.layer]->entries[group.content_entry];
    std::string first = group.content_path_present ? content.path : group.paths.front();
    for (const auto& p : group.paths) {
      PlannedEntry e = copy_entry(p, include.at(p));
      const FileRecord& record = target.files.at(p);
      if (p == first) {
        e.payload_layer = group.layer;
        e.payload_offset = content.payload_offset;
        e.payload_size = content.kind == FileKind::kRegular ? content.size : 0;
        if (record.kind != FileKind::kRegular) {
          e.op = Op::kRetype;
          e.type = '0';
          e.link_target.clear();
        }
      } else if (record.kind != FileKind::kHardlink || record.link_target != first) {
        e.op = Op::kRetype;
        e.type = '1';
        e.link_target = first;
        e.payload_size = 0;
      }
      by_path[p] = std::move(e);
    }
  }

  // 5. Order: small entries, large files, hard links.
  std::vector<PlannedEntry> files, large, links;
  for (auto& [path, e] : by_path) {
    (e.is_hardlink()                   ? links
     : e.payload_size >= kLargePayload ? large
                                       : files)
        .push_back(std::move(e));
  }
  for (const auto& d : deletion_entries) {
    PlannedEntry e;
    e.op = name_of(d) == kOpaqueName ? Op::kOpaque : Op::kWhiteout;
    e.why = Why::kDeletion;
    e.path = d;
    files.push_back(std::move(e));
  }
  auto order = [](const PlannedEntry& a, const PlannedEntry& b) {
    return layer_order_less(a.path, b.path);
  };
  std::sort(files.begin(), files.end(), order);
  std::sort(large.begin(), large.end(), order);
  std::sort(links.begin(), links.end(), order);
  plan.entries = std::move(files);
  for (auto& e : large) plan.entries.push_back(std::move(e));
  for (auto& e : links) plan.entries.push_back(std::move(e));

  for (const auto& e : plan.entries) {
    plan.counts.payload_bytes += e.payload_size;
    if (e.op == Op::kWhiteout) ++plan.counts.whiteouts;
    if (e.op == Op::kOpaque) ++plan.counts.opaque_dirs;
    if (e.why == Why::kAdded) ++plan.counts.added;
    if (e.why == Why::kChanged) ++plan.counts.changed;
    if (e.why == Why::kMetadata) ++plan.counts.metadata;
    if (e.why == Why::kParent) ++plan.counts.parents;
    if (e.why == Why::kLinkGroup) ++plan.counts.link_members;
  }
  return plan;
}

}  // namespace deltasync
