#include "common/io/stream.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace deltasync {

Status read_exact(ByteSource& source, std::span<char> buffer, std::string_view what) {
  DS_ASSIGN_OR_RETURN(size_t got, read_full(source, buffer));
  if (got != buffer.size()) {
    return make_error(ErrorCode::kCorrupt, std::string(what) + ": truncated (wanted " +
                                               std::to_string(buffer.size()) + " bytes, got " +
                                               std::to_string(got) + ")");
  }
  return ok_status();
}

Result<size_t> read_full(ByteSource& source, std::span<char> buffer) {
  size_t total = 0;
  while (total < buffer.size()) {
    DS_ASSIGN_OR_RETURN(size_t got, source.read(buffer.subspan(total)));
    if (got == 0) break;
    total += got;
  }
  return total;
}

Status copy_exact(ByteSource& source, ByteSink& sink, uint64_t count, std::string_view what) {
  std::vector<char> buffer(std::min<uint64_t>(count, kIoChunk));
  uint64_t remaining = count;
  while (remaining > 0) {
    size_t want = std::min<uint64_t>(remaining, buffer.size());
    DS_ASSIGN_OR_RETURN(size_t got, source.read(std::span<char>(buffer.data(), want)));
    if (got == 0) {
      return make_error(ErrorCode::kCorrupt, std::string(what) + ": truncated (" +
                                                 std::to_string(remaining) + " of " +
                                                 std::to_string(count) + " bytes missing)");
    }
    DS_RETURN_IF_ERROR(sink.write(std::string_view(buffer.data(), got)));
    remaining -= got;
  }
  return ok_status();
}

Result<uint64_t> copy_all(ByteSource& source, ByteSink& sink) {
  std::vector<char> buffer(kIoChunk);
  uint64_t total = 0;
  while (true) {
    DS_ASSIGN_OR_RETURN(size_t got, source.read(buffer));
    if (got == 0) return total;
    DS_RETURN_IF_ERROR(sink.write(std::string_view(buffer.data(), got)));
    total += got;
  }
}

Status skip_exact(ByteSource& source, uint64_t count, std::string_view what) {
  CountingSink discard;
  return copy_exact(source, discard, count, what);
}

Result<std::string> read_all(ByteSource& source, size_t limit) {
  std::string out;
  std::vector<char> buffer(64 * 1024);
  while (true) {
    DS_ASSIGN_OR_RETURN(size_t got, source.read(buffer));
    if (got == 0) return out;
    if (out.size() + got > limit) {
      return make_error(ErrorCode::kCorrupt,
                        "stream is larger than the limit of " + std::to_string(limit) + " bytes");
    }
    out.append(buffer.data(), got);
  }
}

Result<size_t> MemorySource::read(std::span<char> buffer) {
  size_t n = std::min(buffer.size(), data_.size());
  std::memcpy(buffer.data(), data_.data(), n);
  data_.remove_prefix(n);
  return n;
}

Result<size_t> LimitedSource::read(std::span<char> buffer) {
  if (remaining_ == 0) return size_t{0};
  size_t want = std::min<uint64_t>(buffer.size(), remaining_);
  DS_ASSIGN_OR_RETURN(size_t got, inner_.read(buffer.first(want)));
  remaining_ -= got;
  return got;
}

BufferedSink::BufferedSink(ByteSink& inner, size_t block_size)
    : inner_(inner), block_size_(block_size) {
  buffer_.reserve(block_size_);
}

Status BufferedSink::write(std::string_view data) {
  if (buffer_.size() + data.size() < block_size_) {
    buffer_.append(data);
    return ok_status();
  }
  DS_RETURN_IF_ERROR(flush());
  if (data.size() >= block_size_) return inner_.write(data);
  buffer_.append(data);
  return ok_status();
}

Status BufferedSink::flush() {
  if (buffer_.empty()) return ok_status();
  auto status = inner_.write(buffer_);
  buffer_.clear();
  return status;
}

Status BufferedSink::finish() {
  DS_RETURN_IF_ERROR(flush());
  return inner_.finish();
}

}  // namespace deltasync

namespace deltasync {

Result<size_t> BufferedSource::read(std::span<char> buffer) {
  if (begin_ == end_) {
    // Large reads bypass the buffer.
    if (buffer.size() >= buffer_.size()) return inner_.read(buffer);
    DS_ASSIGN_OR_RETURN(size_t got, inner_.read(std::span<char>(buffer_.data(), buffer_.size())));
    begin_ = 0;
    end_ = got;
    if (got == 0) return size_t{0};
  }
  size_t n = std::min(buffer.size(), end_ - begin_);
  std::memcpy(buffer.data(), buffer_.data() + begin_, n);
  begin_ += n;
  return n;
}

}  // namespace deltasync
