// Test support: an image's root file system seen the way a user sees it,
// independently of deltasync's tar code. The image is instantiated (docker
// create), the engine exports the container's file system (docker export),
// GNU tar unpacks it as root (owners, modes, mtimes, hard links and xattrs
// such as security.capability kept), and a small Python walker describes
// every path below the root: type, mode, uid, gid, mtime (ns), size and
// sha256 (regular files), link target (symlinks), device numbers, xattrs,
// and the other paths sharing its inode (hard links).
//
// The container's init layer adds /.dockerenv, /etc/hosts, /etc/hostname,
// /etc/resolv.conf, /dev/... and /proc, /sys with the time of `docker create`;
// is_container_init_path() names them so comparisons can skip their mtimes.
//
// Thread safety: none needed; each call runs its own processes.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "common/util/result.h"

namespace deltasync::testing {

struct ReferenceTree {
  std::filesystem::path root;  // the unpacked file system (kept for the caller)
  // relative path -> {"type": "f"|"d"|"l"|"c"|"b"|"p"|"s", "mode", "uid", "gid",
  //   "mtime_ns", "size", "sha256", "link", "rdev", "xattrs": {name: hex},
  //   "links": [other paths with the same inode]}
  nlohmann::json entries;
};

// Unpacks `image` of `engine` into `work`/`name` (which must not exist).
Result<ReferenceTree> reference_tree(const std::string& engine, const std::string& image,
                                     const std::filesystem::path& work, const std::string& name);

// diff_reference_test's classification of one entry: "d", "f:<sha256>",
// "l:<target>", or "o" (anything else).
std::string content_key(const nlohmann::json& entry);

// Paths the container's init layer creates or touches (mtimes differ per container).
bool is_container_init_path(const std::string& path);

}  // namespace deltasync::testing
