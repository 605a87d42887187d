// Random access to basis bytes for the block-delta code: over memory, or over
// a byte range of a borrowed descriptor read with pread (so a basis can be a
// file inside a layer tar on disk without extracting it). Reads are short
// only at the end of the range; a descriptor whose file ends before the range
// does is reported as truncated rather than returned as a short read, so that
// callers never mistake a shrunken file for the end of the basis.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/delta/block_delta.h"

namespace deltasync {

Result<size_t> MemoryRandomAccess::read_at(uint64_t offset, std::span<char> buffer) {
  if (offset >= data_.size()) return size_t{0};
  size_t n = std::min<uint64_t>(buffer.size(), data_.size() - offset);
  std::memcpy(buffer.data(), data_.data() + offset, n);
  return n;
}

Result<size_t> FileRangeRandomAccess::read_at(uint64_t offset, std::span<char> buffer) {
  if (offset >= length_) return size_t{0};
  size_t want = std::min<uint64_t>(buffer.size(), length_ - offset);
  size_t done = 0;
  while (done < want) {
    uint64_t at = offset_ + offset + done;
    ssize_t got = ::pread(fd_, buffer.data() + done, want - done, static_cast<off_t>(at));
    if (got < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error(errno, "basis: pread at " + std::to_string(at)));
    }
    if (got == 0) {
      return make_error(ErrorCode::kCorrupt, "basis: file ends at " + std::to_string(at) +
                                                 ", before the end of its range (" +
                                                 std::to_string(offset_ + length_) + ")");
    }
    done += static_cast<size_t>(got);
  }
  return done;
}

}  // namespace deltasync
