// The members of a tar archive read front to back from a stream (a pipe, a
// socket): each header in turn, its payload readable once as a ByteSource
// before the next. For archives of files (image layouts: blobs, index.json),
// not layers: PAX 'x' and GNU 'L' long names apply to the next member, PAX
// 'g' records are skipped, and nothing is kept for a bit-exact rebuild (that
// is tar_split's job). Headers are checksum-checked; a truncated archive is
// kCorrupt naming the member.
//
// Ownership: borrows `archive`, which must outlive the reader. Not
// thread-safe.
#pragma once

#include <optional>

#include "common/io/stream.h"
#include "common/tar/tar_entry.h"

namespace deltasync {

class TarStreamReader {
 public:
  TarStreamReader(ByteSource& archive, std::string what)
      : archive_(archive), what_(std::move(what)) {}
  // The next member's header (skipping what is left of the previous
  // member's payload); nullopt at the end of the archive.
  Result<std::optional<TarEntry>> next();
  // The current member's payload (entry.size bytes).
  ByteSource& payload() { return *payload_; }

 private:
  Result<std::string> read_extension(uint64_t size, const std::string& kind);

  ByteSource& archive_;
  std::string what_;
  std::optional<LimitedSource> payload_;
  uint64_t padding_ = 0;
};

}  // namespace deltasync
