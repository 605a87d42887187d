// Named members of an image archive (a tar read in place) or of an image
// layout directory, behind one small interface so the manifest code does not
// care which it reads.
//
// A tar archive is indexed once: its headers are walked with pread, jumping
// over payloads (a multi-GiB `docker save` file is not read to index it), and
// each regular file's payload offset and size are kept by normalized name
// ("./manifest.json" -> "manifest.json"; a later duplicate wins, as in tar);
// symlinks and hard links to members are followed inside the archive (docker
// save links a repeated layer to its first copy).
// Members are then read as pread ranges of the one shared descriptor, so
// nothing is extracted to disk. A directory store maps names to files under
// its root and refuses names that could leave it ("..", absolute paths).
//
// Ownership: a MemberStore owns its descriptor; sources it returns borrow the
// store and must not outlive it. Not thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/io/file.h"
#include "common/io/stream.h"

namespace deltasync {

class MemberStore {
 public:
  virtual ~MemberStore() = default;
  // The member's size, or nullopt if the archive/directory has no such member.
  virtual Result<std::optional<uint64_t>> size_of(const std::string& name) = 0;
  // Opens a member; a missing one is kCorrupt naming it (and the likely cause).
  virtual Result<std::unique_ptr<ByteSource>> open(const std::string& name) = 0;

  // Reads a whole member, failing before any read if it exceeds `limit`.
  Result<std::string> read_small(const std::string& name, size_t limit);
  // The member's size, or kCorrupt naming it if missing.
  Result<uint64_t> require(const std::string& name);

 protected:
  virtual std::string missing_message(const std::string& name) const = 0;
};

struct TarIndexLimits {
  size_t max_members = 1'000'000;
};

// Indexes the tar at `path`. `display_name` (e.g. "docker-archive:/x.tar")
// starts error messages. Not a tar, truncated, compressed: kCorrupt.
Result<std::unique_ptr<MemberStore>> open_tar_members(const std::filesystem::path& path,
                                                      const std::string& display_name,
                                                      const TarIndexLimits& limits = {});
// Same, over an already open descriptor (e.g. an unlinked temp file).
Result<std::unique_ptr<MemberStore>> open_tar_members(UniqueFd fd, const std::string& display_name,
                                                      const TarIndexLimits& limits = {});

// Members are the files under `dir`.
Result<std::unique_ptr<MemberStore>> open_directory_members(const std::filesystem::path& dir,
                                                            const std::string& display_name);

}  // namespace deltasync
