#include "sender/diffimage/tree_check.h"

#include "sender/diff/image_diff.h"
#include "sender/diffimage/link_groups.h"

namespace deltasync {

namespace {
constexpr size_t kMaxListed = 20;

std::string join_paths(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) out += (out.empty() ? "/" : ", /") + p;
  return out;
}
}  // namespace

TreeCheck compare_trees(const ImageTree& expected,
                        const std::vector<const LayerIndex*>& expected_layers,
                        const ImageTree& actual,
                        const std::vector<const LayerIndex*>& actual_layers) {
  TreeCheck check;
  check.paths = expected.files.size();
  auto note = [&](std::string text) {
    ++check.difference_count;
    if (check.differences.size() < kMaxListed) check.differences.push_back(std::move(text));
  };
  DiffOptions options;
  options.include_directory_mtime = true;
  ImageDiff diff = diff_image_trees(expected, actual, options);
  for (const FileChange& c : diff.changes) {
    std::string what;
    switch (c.change) {
      case ChangeKind::kAdded:
        what = "present but should not be";
        break;
      case ChangeKind::kRemoved:
        what = "missing";
        break;
      case ChangeKind::kChanged:
      case ChangeKind::kMetadata:
        for (const auto& f : c.fields) what += (what.empty() ? "" : ",") + f;
        what = "differs (" + what + ")";
        break;
    }
    note("/" + c.path + ": " + what);
  }
  LinkGroups want = find_link_groups(expected, expected_layers);
  LinkGroups got = find_link_groups(actual, actual_layers);
  for (const auto& [path, index] : want.group_of) {
    auto members = want.groups[index].paths;
    if (members.size() > 1 && got.members(path) != members)
      note("/" + path + ": should be one file with " + join_paths(members));
  }
  for (const auto& [path, index] : got.group_of) {
    auto members = got.groups[index].paths;
    if (members.size() > 1 && want.members(path) != members)
      note("/" + path + ": should not be one file with " + join_paths(members));
  }
  return check;
}

}  // namespace deltasync
