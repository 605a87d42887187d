// Streaming tar splitter: walks an archive once, block by block, and reports
// each entry's metadata, its payload in chunks, the padding after it, and the
// end-of-archive bytes, to a TarVisitor. Every byte of the input is reported
// exactly once, in order, so metadata + payloads rebuild the archive exactly.
//
// Memory is bounded by the largest extension record (PAX/GNU long name,
// capped by TarSplitLimits) plus one read buffer; payloads are never held.
// Errors name the archive, the entry and its offset.
#pragma once

#include <optional>
#include <string_view>

#include "common/io/stream.h"
#include "common/tar/tar_entry.h"

namespace deltasync {

class TarVisitor {
 public:
  virtual ~TarVisitor() = default;
  // An entry's metadata, before its payload.
  virtual Status on_entry(const TarEntry& entry) = 0;
  // Payload bytes of the current entry, in order (entry.size in total).
  virtual Status on_payload(std::string_view chunk) = 0;
  // The bytes between the payload end and the next block boundary.
  virtual Status on_entry_end(std::string_view padding) = 0;
  // End-of-archive blocks and anything after them (possibly several calls).
  virtual Status on_trailer(std::string_view bytes) = 0;
};

struct TarSplitLimits {
  size_t max_extension_bytes = 16 << 20;  // one PAX / GNU long-name record
};

Status split_tar(ByteSource& input, TarVisitor& visitor, std::string_view archive_name,
                 const TarSplitLimits& limits = {});

// Convenience: calls `fn(entry, payload_source)` for every entry; the
// callback may read the payload (the rest is skipped for it).
class TarEntryReader {
 public:
  // `buffer_bytes`: how much of `input` is read ahead at a time; parsers of
  // one header in memory pass its size instead of filling 256 KiB per entry.
  TarEntryReader(ByteSource& input, std::string archive_name, size_t buffer_bytes = 256 * 1024);
  // Returns the next entry, or nullopt at the end of the archive.
  Result<std::optional<TarEntry>> next();
  // The payload of the entry last returned by next().
  ByteSource& payload() { return payload_; }
  uint64_t offset() const { return offset_; }

 private:
  class PayloadSource final : public ByteSource {
   public:
    explicit PayloadSource(TarEntryReader& owner) : owner_(owner) {}
    Result<size_t> read(std::span<char> buffer) override;

   private:
    TarEntryReader& owner_;
  };
  BufferedSource input_;
  std::string name_;
  PayloadSource payload_{*this};
  uint64_t payload_remaining_ = 0;
  uint64_t padding_remaining_ = 0;
  uint64_t offset_ = 0;
  bool done_ = false;
  size_t index_ = 0;
};

}  // namespace deltasync
