#include "sender/diff/image_diff.h"

#include <cstdio>

namespace deltasync {

namespace {

bool is_file_like(FileKind k) {
  return k == FileKind::kRegular || k == FileKind::kHardlink;
}

// Content: type, bytes, link target, device numbers. Hard links and regular
// files with the same bytes are the same content.
bool same_content(const FileRecord& a, const FileRecord& b) {
  if (is_file_like(a.kind) && is_file_like(b.kind)) return a.size == b.size && a.digest == b.digest;
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case FileKind::kSymlink:
      return a.link_target == b.link_target;
    case FileKind::kCharDevice:
    case FileKind::kBlockDevice:
      return a.dev_major == b.dev_major && a.dev_minor == b.dev_minor;
    case FileKind::kOther:
      return a.size == b.size && a.digest == b.digest;
    default:
      return true;
  }
}

std::vector<std::string> metadata_fields(const FileRecord& a, const FileRecord& b,
                                         const DiffOptions& options) {
  std::vector<std::string> fields;
  if ((a.mode & 07777) != (b.mode & 07777)) fields.push_back("mode");
  if (a.uid != b.uid) fields.push_back("uid");
  if (a.gid != b.gid) fields.push_back("gid");
  bool dir = a.kind == FileKind::kDirectory && b.kind == FileKind::kDirectory;
  if ((a.mtime != b.mtime || a.mtime_text != b.mtime_text) &&
      (!dir || options.include_directory_mtime)) {
    fields.push_back("mtime");
  }
  if (a.xattrs != b.xattrs) fields.push_back("xattrs");
  return fields;
}

uint64_t content_size(const FileRecord& r) {
  return is_file_like(r.kind) || r.kind == FileKind::kOther ? r.size : 0;
}

}  // namespace

ImageDiff diff_image_trees(const ImageTree& old_tree, const ImageTree& new_tree,
                           const DiffOptions& options) {
  ImageDiff diff;
  auto o = old_tree.files.begin();
  auto n = new_tree.files.begin();
  auto add = [&](ChangeKind kind, const std::string& path, const FileRecord* a, const FileRecord* b,
                 std::vector<std::string> fields) {
    FileChange c{kind, path};
    if (a) c.old_kind = a->kind, c.old_size = content_size(*a);
    if (b) c.new_kind = b->kind, c.new_size = content_size(*b);
    c.fields = std::move(fields);
    diff.changes.push_back(std::move(c));
  };
  while (o != old_tree.files.end() || n != new_tree.files.end()) {
    if (n == new_tree.files.end() || (o != old_tree.files.end() && o->first < n->first)) {
      add(ChangeKind::kRemoved, o->first, &o->second, nullptr, {});
      ++diff.totals.removed;
      diff.totals.removed_bytes += content_size(o->second);
      ++o;
    } else if (o == old_tree.files.end() || n->first < o->first) {
      add(ChangeKind::kAdded, n->first, nullptr, &n->second, {});
      ++diff.totals.added;
      diff.totals.added_bytes += content_size(n->second);
      ++n;
    } else {
      auto fields = metadata_fields(o->second, n->second, options);
      if (!same_content(o->second, n->second)) {
        fields.insert(fields.begin(),
                      o->second.kind != n->second.kind &&
                              !(is_file_like(o->second.kind) && is_file_like(n->second.kind))
                          ? "type"
                          : "content");
        add(ChangeKind::kChanged, n->first, &o->second, &n->second, std::move(fields));
        ++diff.totals.changed;
        diff.totals.changed_old_bytes += content_size(o->second);
        diff.totals.changed_new_bytes += content_size(n->second);
      } else if (!fields.empty()) {
        add(ChangeKind::kMetadata, n->first, &o->second, &n->second, std::move(fields));
        ++diff.totals.metadata_only;
      } else {
        ++diff.totals.unchanged;
      }
      ++o;
      ++n;
    }
  }
  return diff;
}

std::string format_diff_text(const ImageDiff& diff, bool summary_only) {
  std::string out;
  if (!summary_only) {
    for (const auto& c : diff.changes) {
      out += static_cast<char>(c.change);
      out += "  /" + c.path;
      std::string detail;
      switch (c.change) {
        case ChangeKind::kAdded:
          detail = c.new_kind == FileKind::kRegular || c.new_kind == FileKind::kHardlink
                       ? human_bytes(c.new_size)
                       : std::string(file_kind_name(c.new_kind));
          break;
        case ChangeKind::kRemoved:
          detail = c.old_kind == FileKind::kRegular || c.old_kind == FileKind::kHardlink
                       ? human_bytes(c.old_size)
                       : std::string(file_kind_name(c.old_kind));
          break;
        case ChangeKind::kChanged:
          detail = human_bytes(c.old_size) + " -> " + human_bytes(c.new_size);
          [[fallthrough]];
        case ChangeKind::kMetadata: {
          std::string fields;
          for (const auto& f : c.fields) fields += (fields.empty() ? "" : ",") + f;
          detail += (detail.empty() ? "" : "  ") + std::string("(") + fields + ")";
          break;
        }
      }
      out += "  " + detail + "\n";
    }
  }
  const auto& t = diff.totals;
  out += "added " + std::to_string(t.added) + " (" + human_bytes(t.added_bytes) + "), changed " +
         std::to_string(t.changed) + " (" + human_bytes(t.changed_old_bytes) + " -> " +
         human_bytes(t.changed_new_bytes) + "), removed " + std::to_string(t.removed) + " (" +
         human_bytes(t.removed_bytes) + "), metadata only " + std::to_string(t.metadata_only) +
         ", unchanged " + std::to_string(t.unchanged) + "\n";
  return out;
}

nlohmann::json diff_to_json(const ImageDiff& diff) {
  nlohmann::json added = nlohmann::json::array(), removed = nlohmann::json::array(),
                 changed = nlohmann::json::array(), metadata = nlohmann::json::array();
  for (const auto& c : diff.changes) {
    switch (c.change) {
      case ChangeKind::kAdded:
        added.push_back(
            {{"path", "/" + c.path}, {"type", file_kind_name(c.new_kind)}, {"size", c.new_size}});
        break;
      case ChangeKind::kRemoved:
        removed.push_back(
            {{"path", "/" + c.path}, {"type", file_kind_name(c.old_kind)}, {"size", c.old_size}});
        break;
      case ChangeKind::kChanged:
        changed.push_back({{"path", "/" + c.path},
                           {"old_type", file_kind_name(c.old_kind)},
                           {"type", file_kind_name(c.new_kind)},
                           {"old_size", c.old_size},
                           {"size", c.new_size},
                           {"fields", c.fields}});
        break;
      case ChangeKind::kMetadata:
        metadata.push_back(
            {{"path", "/" + c.path}, {"type", file_kind_name(c.new_kind)}, {"fields", c.fields}});
        break;
    }
  }
  const auto& t = diff.totals;
  return {{"added", added},
          {"changed", changed},
          {"removed", removed},
          {"metadata_only", metadata},
          {"totals",
           {{"added", t.added},
            {"added_bytes", t.added_bytes},
            {"changed", t.changed},
            {"changed_old_bytes", t.changed_old_bytes},
            {"changed_new_bytes", t.changed_new_bytes},
            {"removed", t.removed},
            {"removed_bytes", t.removed_bytes},
            {"metadata_only", t.metadata_only},
            {"unchanged", t.unchanged}}}};
}

}  // namespace deltasync
