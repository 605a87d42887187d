// File-level comparison of two image root file systems: what was added,
// removed, changed in content (or type / link target), and what changed only
// in metadata (mode, owner, mtime, xattrs). This answers exactly the question
// the "changed files layer" workaround asks `rsync --dry-run` inside two
// running containers, from the layer indexes alone.
//
// Thread safety: pure functions over value types.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/index/image_tree.h"
#include "common/util/human_units.h"

namespace deltasync {

enum class ChangeKind : char { kAdded = 'A', kRemoved = 'D', kChanged = 'C', kMetadata = 'M' };

struct FileChange {
  ChangeKind change;
  std::string path;
  FileKind old_kind = FileKind::kRegular;
  FileKind new_kind = FileKind::kRegular;
  uint64_t old_size = 0;
  uint64_t new_size = 0;
  std::vector<std::string> fields;  // for kMetadata/kChanged: "content", "mode", "mtime", ...
};

struct DiffTotals {
  uint64_t added = 0, removed = 0, changed = 0, metadata_only = 0, unchanged = 0;
  uint64_t added_bytes = 0, removed_bytes = 0, changed_old_bytes = 0, changed_new_bytes = 0;
};

struct ImageDiff {
  std::vector<FileChange> changes;  // sorted by path
  DiffTotals totals;
};

struct DiffOptions {
  // Directory mtimes change whenever a child does; reported only when asked.
  bool include_directory_mtime = false;
};

ImageDiff diff_image_trees(const ImageTree& old_tree, const ImageTree& new_tree,
                           const DiffOptions& options = {});

std::string format_diff_text(const ImageDiff& diff, bool summary_only);
nlohmann::json diff_to_json(const ImageDiff& diff);

}  // namespace deltasync
