// See blob_fetch.h. The partial file is appended with O_APPEND writes and
// fsynced before a retry, so what is counted as "on disk" is on disk.
#include "receiver/pull/blob_fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/crypto/digest.h"
#include "common/io/file.h"

namespace deltasync {

namespace {

Result<Digest> hash_file(const std::filesystem::path& path) {
  DS_ASSIGN_OR_RETURN(auto source, open_file_source(path));
  HashingSink hashed;
  DS_RETURN_IF_ERROR(copy_all(*source, hashed));
  return hashed.digest();
}

uint64_t size_on_disk(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Appends to the partial file; counts what it writes.
class AppendSink final : public ByteSink {
 public:
  AppendSink(int fd, std::string name, uint64_t limit)
      : fd_(fd), name_(std::move(name)), limit_(limit) {}
  Status write(std::string_view data) override {
    if (written_ + data.size() > limit_)
      return make_error(ErrorCode::kCorrupt,
                        name_ + ": the registry sent more than the blob's size");
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::unexpected(errno_error(errno, "writing " + name_));
      }
      data.remove_prefix(static_cast<size_t>(n));
      written_ += static_cast<uint64_t>(n);
    }
    return ok_status();
  }
  uint64_t written() const { return written_; }

 private:
  int fd_;
  std::string name_;
  uint64_t limit_;
  uint64_t written_ = 0;
};

}  // namespace

Status fetch_blob_to_file(RegistryClient& client, const std::string& repository,
                          const Digest& digest, uint64_t size, const std::filesystem::path& path,
                          int attempts, BlobFetchStats& stats) {
  if (size_on_disk(path) == size && std::filesystem::exists(path)) {
    auto have = hash_file(path);
    if (have && *have == digest) {
      ++stats.blobs_reused;
      stats.bytes_reused += size;
      return ok_status();
    }
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  auto partial = path;
  partial += ".partial";
  bool restarted = false;
  for (int attempt = 1;; ++attempt) {
    uint64_t have = size_on_disk(partial);
    if (have > size) {
      std::error_code ec;
      std::filesystem::remove(partial, ec);
      have = 0;
    }
    if (attempt == 1) stats.bytes_reused += have;
    Status fetched = ok_status();
    if (have < size) {
      int fd = ::open(partial.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) return std::unexpected(errno_error(errno, "opening " + partial.string()));
      UniqueFd owned(fd);
      AppendSink sink(fd, partial.string(), size - have);
      fetched = client.fetch_blob(repository, digest, have, sink);
      stats.bytes_fetched += sink.written();
      if (::fsync(fd) != 0 && fetched)
        fetched = std::unexpected(errno_error(errno, "syncing " + partial.string()));
      if (fetched && have + sink.written() != size)
        fetched = make_error(ErrorCode::kCorrupt, "blob " + digest.str() + ": the registry sent " +
                                                      std::to_string(have + sink.written()) +
                                                      " of " + std::to_string(size) + " bytes");
    }
    if (fetched) {
      DS_ASSIGN_OR_RETURN(Digest got, hash_file(partial));
      if (got == digest) {
        std::error_code ec;
        std::filesystem::rename(partial, path, ec);
        if (ec)
          return make_error(ErrorCode::kIo, "renaming " + partial.string() + ": " + ec.message());
        ++stats.blobs_fetched;
        return ok_status();
      }
      std::error_code ec;
      std::filesystem::remove(partial, ec);
      if (restarted)
        return make_error(ErrorCode::kVerifyFailed,
                          "blob " + digest.str() + " from the registry hashes to " + got.str() +
                              " (fetched twice from the start)");
      spdlog::warn("blob {}: the resumed file hashes to {}; fetching it again from the start",
                   digest.short_str(), got.short_str());
      restarted = true;
      continue;
    }
    const Error& error = fetched.error();
    bool retryable = error.code() == ErrorCode::kUnavailable ||
                     error.code() == ErrorCode::kTimeout || error.code() == ErrorCode::kProtocol;
    if (!retryable || attempt >= attempts) return fetched;
    ++stats.resumes;
    spdlog::warn("blob {}: {}; resuming from byte {} (try {} of {})", digest.short_str(),
                 error.message(), size_on_disk(partial), attempt + 1, attempts);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
}

}  // namespace deltasync
