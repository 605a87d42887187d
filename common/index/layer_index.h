// The file index of one layer: every entry's path, type, metadata and, for
// regular files, the sha256 and size of its content and where that content
// sits in the layer tar. Built in one streaming pass (split_tar + hashing),
// so a layer is read once and never held in memory. Both sides use it: the
// sender to plan (which files are new, which have a basis), the receiver to
// find basis files by content or path without re-exporting.
//
// Thread safety: value types. build_layer_index() may run concurrently on
// different sources.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/io/stream.h"

namespace deltasync {

enum class FileKind : uint8_t {
  kRegular,
  kDirectory,
  kSymlink,
  kHardlink,
  kCharDevice,
  kBlockDevice,
  kFifo,
  kOther
};
std::string_view file_kind_name(FileKind kind);

struct FileRecord {
  std::string path;  // normalized: no leading "./" or "/", no trailing "/"
  FileKind kind = FileKind::kRegular;
  uint64_t size = 0;        // content bytes (regular files; hard links after resolution)
  Digest digest;            // content sha256 (regular files; hard links after resolution)
  std::string link_target;  // symlink target, or hard-link target path (normalized)
  uint32_t mode = 0;
  uint64_t uid = 0;
  uint64_t gid = 0;
  int64_t mtime = 0;
  std::string mtime_text;  // PAX sub-second mtime as written, if any
  std::map<std::string, std::string> xattrs;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  // Position in the layer: entry ordinal and payload offset in the tar.
  uint64_t entry_index = 0;
  uint64_t payload_offset = 0;
  uint32_t layer = 0;        // position of the layer in the image (set by build_image_tree)
  std::string raw_metadata;  // the entry's header bytes exactly as in the tar
};

struct LayerIndex {
  Digest diff_id;
  uint64_t tar_size = 0;
  std::vector<FileRecord> entries;  // in archive order, whiteouts included as-is
};

struct TarEntry;
// The record of one parsed tar entry (`entry_index` is its ordinal).
FileRecord file_record_from_entry(const TarEntry& entry, uint64_t entry_index);

// Reads a layer tar to its end (so a VerifyingSource gets to check it).
Result<LayerIndex> build_layer_index(ByteSource& layer_tar, const Digest& diff_id,
                                     std::string_view name);

}  // namespace deltasync
