// Hard-link groups of an image's root file system: the paths that are one
// file (one inode) when the image runs.
//
// In a layer tar, a hard link names an earlier entry of the same layer (the
// runtime extracts each layer on its own, so a link can only reach a file of
// its own layer). A group is therefore identified by the regular-file entry
// that holds the content: (layer, entry ordinal). Its members are the paths
// of the overlay tree whose record is that entry or a hard link resolving to
// it. A later layer that replaces one member (a new inode) takes that path
// out of the group; one that deletes the first entry's path leaves the other
// members linked to each other, with no member holding the original header.
//
// Thread safety: pure functions over value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/index/image_tree.h"

namespace deltasync {

struct LinkGroup {
  uint32_t layer = 0;                 // layer of the entry holding the content
  uint64_t content_entry = 0;         // its ordinal in that layer's index
  std::vector<std::string> paths;     // members in the tree, sorted
  bool content_path_present = false;  // the content entry's own path is a member
};

struct LinkGroups {
  // Groups with two or more members, or with a hard-link member (a link whose
  // partners are all gone still has to become a regular file somewhere).
  std::vector<LinkGroup> groups;
  std::map<std::string, size_t> group_of;  // member path -> index in groups

  // The sorted members of `path`'s group; {path} for a file of its own.
  std::vector<std::string> members(const std::string& path) const;
};

// `layers` are the indexes the tree was built from, in order.
LinkGroups find_link_groups(const ImageTree& tree, const std::vector<const LayerIndex*>& layers);

}  // namespace deltasync
