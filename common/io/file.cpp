#include "common/io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace deltasync {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<UniqueFd> open_for_read(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno_error(errno, "open " + path.string()));
  return UniqueFd(fd);
}

Result<uint64_t> file_size(int fd, const std::filesystem::path& path_for_errors) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return std::unexpected(errno_error(errno, "stat " + path_for_errors.string()));
  }
  return static_cast<uint64_t>(st.st_size);
}

FileSource::FileSource(UniqueFd fd, std::string name)
    : owned_(std::move(fd)), fd_(owned_.get()), name_(std::move(name)) {}

FileSource::FileSource(int fd, uint64_t offset, uint64_t length, std::string name)
    : fd_(fd), ranged_(true), offset_(offset), remaining_(length), name_(std::move(name)) {}

Result<size_t> FileSource::read(std::span<char> buffer) {
  while (true) {
    ssize_t got;
    if (ranged_) {
      if (remaining_ == 0) return size_t{0};
      size_t want = std::min<uint64_t>(buffer.size(), remaining_);
      got = ::pread(fd_, buffer.data(), want, static_cast<off_t>(offset_));
      if (got == 0) {
        return make_error(ErrorCode::kCorrupt, name_ + ": file ends before the expected range");
      }
      if (got > 0) {
        offset_ += got;
        remaining_ -= got;
      }
    } else {
      got = ::read(fd_, buffer.data(), buffer.size());
    }
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return std::unexpected(errno_error(errno, "read " + name_));
  }
}

Result<std::unique_ptr<FileSource>> open_file_source(const std::filesystem::path& path) {
  DS_ASSIGN_OR_RETURN(UniqueFd fd, open_for_read(path));
  return std::make_unique<FileSource>(std::move(fd), path.string());
}

static Status write_all_fd(int fd, std::string_view data, const std::string& name) {
  while (!data.empty()) {
    ssize_t put = ::write(fd, data.data(), data.size());
    if (put < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error(errno, "write " + name));
    }
    data.remove_prefix(static_cast<size_t>(put));
  }
  return ok_status();
}

Status FdSink::write(std::string_view data) {
  return write_all_fd(fd_.get(), data, name_);
}

Status FdSink::finish() {
  fd_.reset();
  return ok_status();
}

AtomicFile::AtomicFile(std::filesystem::path path, std::filesystem::path temp, UniqueFd fd)
    : path_(std::move(path)), temp_path_(std::move(temp)), fd_(std::move(fd)) {}

Result<std::unique_ptr<AtomicFile>> AtomicFile::create(const std::filesystem::path& path) {
  std::string pattern = path.string() + ".tmp-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno_error(errno, "create temp file for " + path.string()));
  return std::unique_ptr<AtomicFile>(
      new AtomicFile(path, std::filesystem::path(name.data()), UniqueFd(fd)));
}

AtomicFile::~AtomicFile() {
  if (!published_) ::unlink(temp_path_.c_str());
}

Status AtomicFile::write(std::string_view data) {
  return write_all_fd(fd_.get(), data, temp_path_.string());
}

Status AtomicFile::finish() {
  if (finished_) return ok_status();
  if (::fsync(fd_.get()) != 0)
    return std::unexpected(errno_error(errno, "fsync " + temp_path_.string()));
  finished_ = true;
  return ok_status();
}

Status AtomicFile::publish() {
  DS_RETURN_IF_ERROR(finish());
  fd_.reset();
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return std::unexpected(errno_error(errno, "rename into " + path_.string()));
  }
  published_ = true;
  // Make the rename durable.
  UniqueFd dir(::open(path_.parent_path().empty() ? "." : path_.parent_path().c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
  return ok_status();
}

Result<std::string> read_small_file(const std::filesystem::path& path, size_t limit) {
  DS_ASSIGN_OR_RETURN(auto source, open_file_source(path));
  return with_context(read_all(*source, limit), path.string());
}

Status write_file_atomically(const std::filesystem::path& path, std::string_view data) {
  DS_ASSIGN_OR_RETURN(auto file, AtomicFile::create(path));
  DS_RETURN_IF_ERROR(file->write(data));
  return file->publish();
}

namespace {
// Removes "<prefix><pid>-*" directories whose process is gone: the scratch
// of a run that was killed (kill -9 runs no destructor).
void sweep_stale_temp_dirs(const std::filesystem::path& parent, std::string_view prefix) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t dash = name.find('-', prefix.size());
    if (dash == std::string::npos || dash == prefix.size()) continue;
    std::string pid = name.substr(prefix.size(), dash - prefix.size());
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::filesystem::exists("/proc/" + pid, ec)) continue;
    std::filesystem::remove_all(entry.path(), ec);
  }
}
}  // namespace

Result<TempDir> TempDir::create(const std::filesystem::path& parent, std::string_view prefix) {
  sweep_stale_temp_dirs(parent, prefix);
  std::string pattern =
      (parent / (std::string(prefix) + std::to_string(::getpid()) + "-XXXXXX")).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (::mkdtemp(name.data()) == nullptr) {
    return std::unexpected(errno_error(errno, "create temp directory in " + parent.string()));
  }
  return TempDir(std::filesystem::path(name.data()));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path default_temp_parent() {
  if (const char* dir = std::getenv("TMPDIR"); dir != nullptr && *dir != '\0') return dir;
  return "/var/tmp";
}

}  // namespace deltasync
