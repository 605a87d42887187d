// Indexes the members of an image archive (tar) or layout directory; see
// archive_index.h. The tar walk reuses TarEntryReader for header parsing
// (PAX / GNU long names included) but starts a fresh reader at each header
// offset, fed through a source that reads small pieces, so that indexing
// costs a few KiB of I/O per member instead of a pass over every layer.
#include "common/image/archive_index.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "common/codec/compression.h"
#include "common/tar/tar_entry.h"
#include "common/tar/tar_split.h"

namespace deltasync {

Result<uint64_t> MemberStore::require(const std::string& name) {
  DS_ASSIGN_OR_RETURN(std::optional<uint64_t> size, size_of(name));
  if (!size) return make_error(ErrorCode::kCorrupt, missing_message(name));
  return *size;
}

Result<std::string> MemberStore::read_small(const std::string& name, size_t limit) {
  DS_ASSIGN_OR_RETURN(uint64_t size, require(name));
  if (size > limit) {
    return make_error(ErrorCode::kCorrupt, "member '" + name + "' is " + std::to_string(size) +
                                               " bytes, more than the limit of " +
                                               std::to_string(limit) + " for a JSON document");
  }
  DS_ASSIGN_OR_RETURN(auto source, open(name));
  return read_all(*source, limit);
}

namespace {

// Passes reads on in pieces of at most `cap` bytes, so the BufferedSource
// inside TarEntryReader fetches one small block per header, not 256 KiB.
class SmallReadSource final : public ByteSource {
 public:
  SmallReadSource(ByteSource& inner, size_t cap) : inner_(inner), cap_(cap) {}
  Result<size_t> read(std::span<char> buffer) override {
    return inner_.read(buffer.first(std::min(buffer.size(), cap_)));
  }

 private:
  ByteSource& inner_;
  size_t cap_;
};

// The member a link entry points to: a hard link names it from the archive
// root, a symlink relative to its own directory. ".." is resolved; a target
// above the root names nothing (an empty name).
std::string link_target_member(const std::string& path, const TarEntry& entry) {
  std::string joined = entry.link_target;
  if (entry.is_symlink() && !joined.starts_with('/')) {
    size_t slash = path.rfind('/');
    joined = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + joined;
  }
  std::vector<std::string_view> parts;
  std::string_view rest = joined;
  while (!rest.empty()) {
    size_t slash = std::min(rest.find('/'), rest.size());
    std::string_view part = rest.substr(0, slash);
    rest.remove_prefix(std::min(slash + 1, rest.size()));
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return std::string();
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto part : parts) {
    if (!out.empty()) out += '/';
    out.append(part);
  }
  return out;
}

struct MemberRange {
  uint64_t offset = 0;
  uint64_t size = 0;
};

class TarMembers final : public MemberStore {
 public:
  TarMembers(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  Status index(const TarIndexLimits& limits);

  Result<std::optional<uint64_t>> size_of(const std::string& name) override {
    const MemberRange* member = find(name);
    if (!member) return std::optional<uint64_t>();
    return std::optional<uint64_t>(member->size);
  }

  Result<std::unique_ptr<ByteSource>> open(const std::string& name) override {
    const MemberRange* member = find(name);
    if (!member) return make_error(ErrorCode::kCorrupt, missing_message(name));
    return std::unique_ptr<ByteSource>(std::make_unique<FileSource>(
        fd_.get(), member->offset, member->size, "member '" + name + "'"));
  }

 protected:
  std::string missing_message(const std::string& name) const override {
    std::string message = "the archive has no member '" + name + "'";
    if (!saw_end_marker_) {
      message +=
          " (the archive ends without an end-of-archive marker, so it is probably "
          "truncated; copy or export it again)";
    } else {
      message += " (the archive is incomplete or was not written by docker save / an OCI tool)";
    }
    return message;
  }

 private:
  Status not_a_tar(const Error& error);

  // Follows symlinks and hard links (docker save stores a layer that occurs
  // twice as "<id>/layer.tar -> ../<other-id>/layer.tar").
  const MemberRange* find(const std::string& name) const {
    std::string current = normalize_tar_path(name);
    for (int hops = 0; hops < 16; ++hops) {
      if (auto it = members_.find(current); it != members_.end()) return &it->second;
      auto link = links_.find(current);
      if (link == links_.end()) return nullptr;
      current = link->second;
    }
    return nullptr;
  }

  UniqueFd fd_;
  std::string name_;
  std::unordered_map<std::string, MemberRange> members_;
  std::unordered_map<std::string, std::string> links_;  // name -> target member name
  bool saw_end_marker_ = false;
};

Status TarMembers::not_a_tar(const Error& error) {
  char head[4] = {};
  ssize_t got = ::pread(fd_.get(), head, sizeof(head), 0);
  Compression c =
      detect_compression(std::string_view(head, got > 0 ? static_cast<size_t>(got) : 0));
  if (c != Compression::kNone) {
    return make_error(ErrorCode::kCorrupt,
                      "the file is " + std::string(compression_name(c)) +
                          "-compressed, not a tar archive; decompress it first (e.g. " +
                          (c == Compression::kGzip ? "gunzip" : "unzstd") + ")");
  }
  return make_error(ErrorCode::kCorrupt,
                    "not a tar archive (" + error.message() +
                        "); pass the output of docker save or an OCI image layout tar");
}

Status TarMembers::index(const TarIndexLimits& limits) {
  DS_ASSIGN_OR_RETURN(uint64_t file_size_bytes, file_size(fd_.get(), name_));
  if (file_size_bytes == 0) {
    return make_error(ErrorCode::kCorrupt, "the file is empty, not a tar archive");
  }
  uint64_t pos = 0;
  size_t count = 0;
  while (pos < file_size_bytes) {
    FileSource range(fd_.get(), pos, file_size_bytes - pos, name_);
    SmallReadSource small(range, 4096);
    TarEntryReader reader(small, name_);
    auto next = reader.next();
    if (!next) {
      // The reader's messages name the archive and an entry/offset relative to
      // where this reader started; restate them for the whole archive.
      std::string detail = next.error().message();
      std::string prefix = name_ + ": tar entry 0 at offset ";
      size_t cut = detail.starts_with(prefix)         ? detail.find(": ", prefix.size())
                   : detail.starts_with(name_ + ": ") ? name_.size()
                                                      : std::string::npos;
      if (cut != std::string::npos) detail.erase(0, cut + 2);
      if (detail.find("truncated") != std::string::npos) {
        detail += " (copy or export the archive again)";
      }
      Error error(next.error().code(), "tar entry " + std::to_string(count) + " at offset " +
                                           std::to_string(pos) + ": " + detail);
      if (count == 0) return not_a_tar(error);
      return std::unexpected(std::move(error));
    }
    if (!next->has_value()) {
      saw_end_marker_ = true;
      break;
    }
    const TarEntry& entry = **next;
    uint64_t payload = pos + reader.offset();
    // payload <= file size (its header was read from the file); a size near
    // 2^64 (base-256) must not wrap a sum below the file size.
    if (entry.size > file_size_bytes - payload) {
      return make_error(ErrorCode::kCorrupt,
                        "the archive is truncated: member '" + entry.path + "' needs " +
                            std::to_string(entry.size - (file_size_bytes - payload)) +
                            " more bytes than the file has; copy or export it again");
    }
    if (++count > limits.max_members) {
      return make_error(ErrorCode::kCorrupt, "the archive has more than " +
                                                 std::to_string(limits.max_members) +
                                                 " members; it is not an image archive");
    }
    std::string path = entry.normalized_path();
    if (entry.is_regular()) {
      links_.erase(path);
      members_[path] = MemberRange{payload, entry.size};
    } else if (entry.is_symlink() || entry.is_hardlink()) {
      members_.erase(path);
      links_[path] = link_target_member(path, entry);
    }
    pos = payload + entry.size + tar_padding(entry.size);
  }
  return ok_status();
}

class DirectoryMembers final : public MemberStore {
 public:
  DirectoryMembers(std::filesystem::path root, std::string name)
      : root_(std::move(root)), name_(std::move(name)) {}

  Result<std::optional<uint64_t>> size_of(const std::string& name) override {
    DS_ASSIGN_OR_RETURN(std::filesystem::path path, resolve(name));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::optional<uint64_t>();
      return std::unexpected(errno_error(errno, "stat " + path.string()));
    }
    if (!S_ISREG(st.st_mode)) return std::optional<uint64_t>();
    return std::optional<uint64_t>(static_cast<uint64_t>(st.st_size));
  }

  Result<std::unique_ptr<ByteSource>> open(const std::string& name) override {
    DS_RETURN_IF_ERROR(require(name));
    DS_ASSIGN_OR_RETURN(std::filesystem::path path, resolve(name));
    DS_ASSIGN_OR_RETURN(UniqueFd fd, open_for_read(path));
    return std::unique_ptr<ByteSource>(std::make_unique<FileSource>(std::move(fd), path.string()));
  }

 protected:
  std::string missing_message(const std::string& name) const override {
    return "the layout directory has no file '" + name +
           "' (the layout is incomplete; copy or export it again)";
  }

 private:
  // Only relative names without ".." are members; anything else is refused.
  Result<std::filesystem::path> resolve(const std::string& name) const {
    std::string normal = normalize_tar_path(name);
    bool bad = normal.empty() || name.starts_with('/');
    for (size_t i = 0; !bad && i <= normal.size();) {
      size_t slash = std::min(normal.find('/', i), normal.size());
      if (std::string_view(normal).substr(i, slash - i) == "..") bad = true;
      i = slash + 1;
    }
    if (bad) {
      return make_error(ErrorCode::kCorrupt, "refusing to read '" + name +
                                                 "': it is not a plain path inside the layout");
    }
    return root_ / normal;
  }

  std::filesystem::path root_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<MemberStore>> open_tar_members(UniqueFd fd, const std::string& display_name,
                                                      const TarIndexLimits& limits) {
  auto store = std::make_unique<TarMembers>(std::move(fd), display_name);
  DS_RETURN_IF_ERROR(store->index(limits));
  return std::unique_ptr<MemberStore>(std::move(store));
}

Result<std::unique_ptr<MemberStore>> open_tar_members(const std::filesystem::path& path,
                                                      const std::string& display_name,
                                                      const TarIndexLimits& limits) {
  DS_ASSIGN_OR_RETURN(UniqueFd fd, open_for_read(path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return std::unexpected(errno_error(errno, "stat " + path.string()));
  if (S_ISDIR(st.st_mode)) {
    return make_error(ErrorCode::kInvalidArgument, path.string() +
                                                       " is a directory; use oci:" + path.string() +
                                                       " for an OCI layout directory");
  }
  return open_tar_members(std::move(fd), display_name, limits);
}

Result<std::unique_ptr<MemberStore>> open_directory_members(const std::filesystem::path& dir,
                                                            const std::string& display_name) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (!std::filesystem::exists(dir, ec)) {
      return make_error(ErrorCode::kNotFound, "no such directory " + dir.string());
    }
    return make_error(ErrorCode::kInvalidArgument,
                      dir.string() + " is not a directory; use oci-archive:" + dir.string() +
                          " for an OCI layout in a tar file");
  }
  return std::unique_ptr<MemberStore>(std::make_unique<DirectoryMembers>(dir, display_name));
}

}  // namespace deltasync
