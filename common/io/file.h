// Files and descriptors behind our stream types; errno is converted here.
//
// UniqueFd owns a descriptor. FileSource reads a descriptor sequentially or a
// byte range of it with pread (so many sources may share one open archive).
// AtomicFile writes to "<path>.tmp-XXXXXX" beside the target and only
// publish() fsyncs and renames it into place; destroying it unpublished
// removes the temp file, so a crash or error never leaves a half file under
// the final name.
//
// Thread safety: none; one owner per object.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/io/stream.h"

namespace deltasync {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

Result<UniqueFd> open_for_read(const std::filesystem::path& path);
Result<uint64_t> file_size(int fd, const std::filesystem::path& path_for_errors);

// Reads a descriptor. With a range, reads [offset, offset+length) by pread.
class FileSource final : public ByteSource {
 public:
  // Sequential read of an owned descriptor (a file or a pipe).
  FileSource(UniqueFd fd, std::string name);
  // Range read of a borrowed descriptor that must outlive this source.
  FileSource(int fd, uint64_t offset, uint64_t length, std::string name);
  Result<size_t> read(std::span<char> buffer) override;

 private:
  UniqueFd owned_;
  int fd_;
  bool ranged_ = false;
  uint64_t offset_ = 0;
  uint64_t remaining_ = 0;
  std::string name_;
};

Result<std::unique_ptr<FileSource>> open_file_source(const std::filesystem::path& path);

// Writes to a descriptor (owned), e.g. a pipe or an opened file.
class FdSink final : public ByteSink {
 public:
  FdSink(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  Status write(std::string_view data) override;
  Status finish() override;
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string name_;
};

// Writes a file atomically (temp file + fsync + rename).
class AtomicFile final : public ByteSink {
 public:
  static Result<std::unique_ptr<AtomicFile>> create(const std::filesystem::path& path);
  ~AtomicFile() override;
  Status write(std::string_view data) override;
  // Flushes and fsyncs; the file is not visible until publish().
  Status finish() override;
  Status publish();
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  AtomicFile(std::filesystem::path path, std::filesystem::path temp, UniqueFd fd);
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  UniqueFd fd_;
  bool finished_ = false;
  bool published_ = false;
};

Result<std::string> read_small_file(const std::filesystem::path& path, size_t limit);
Status write_file_atomically(const std::filesystem::path& path, std::string_view data);

// A directory removed with its contents when destroyed. Named
// "<prefix><pid>-XXXXXX"; create() first removes directories with the same
// prefix left by processes that no longer exist (killed runs).
class TempDir {
 public:
  static Result<TempDir> create(const std::filesystem::path& parent, std::string_view prefix);
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

// $TMPDIR or /var/tmp (large files go there, not to a tmpfs /tmp).
std::filesystem::path default_temp_parent();

}  // namespace deltasync
