// The metadata stream of a split tar, and reassembly from it.
//
// split_tar() + TarMetadataWriter turn a layer into two streams: the
// metadata stream (every non-payload byte, as records below) and the
// payloads (regular-file contents, concatenated in entry order).
// reassemble_tar() interleaves them again, byte for byte. The payload side
// is an interface, so the delta decoder can produce each file's content from
// a basis file, a literal or a patch, without the layer ever being whole in
// memory or on disk.
//
// Record format (all integers LEB128 varints):
//   'E' meta_len meta[meta_len] payload_size pad_len pad_kind(0 zeros|1 raw) [pad]
//   'Z' count            -- `count` zero bytes of end-of-archive/trailer
//   'T' len bytes[len]   -- other trailer bytes
//   '.'                  -- end of stream
// Formally documented in docs/bundle-format.md.
#pragma once

#include <cstdint>
#include <string>

#include "common/io/stream.h"
#include "common/tar/tar_split.h"

namespace deltasync {

// A TarVisitor that writes the metadata stream to `metadata` and, when
// `payloads` is non-null, the payload bytes to it.
class TarMetadataWriter final : public TarVisitor {
 public:
  TarMetadataWriter(ByteSink& metadata, ByteSink* payloads);
  Status on_entry(const TarEntry& entry) override;
  Status on_payload(std::string_view chunk) override;
  Status on_entry_end(std::string_view padding) override;
  Status on_trailer(std::string_view bytes) override;
  // Writes the end record; call after split_tar() succeeds.
  Status finish();
  uint64_t entry_count() const { return entries_; }

 private:
  Status flush_zero_run();
  ByteSink& metadata_;
  ByteSink* payloads_;
  std::string record_;
  uint64_t pending_zeros_ = 0;
  uint64_t entries_ = 0;
};

// One entry as reassembly sees it.
struct TarMetadataRecord {
  size_t index = 0;
  std::string raw_metadata;
  uint64_t payload_size = 0;
};

// Supplies each entry's payload during reassembly.
class PayloadProvider {
 public:
  virtual ~PayloadProvider() = default;
  // Writes exactly record.payload_size bytes of entry `record.index` to out.
  virtual Status write_payload(const TarMetadataRecord& record, ByteSink& out) = 0;
};

// Payloads from one stream of concatenated contents.
class StreamPayloadProvider final : public PayloadProvider {
 public:
  explicit StreamPayloadProvider(ByteSource& payloads) : payloads_(payloads) {}
  Status write_payload(const TarMetadataRecord& record, ByteSink& out) override;

 private:
  ByteSource& payloads_;
};

struct ReassembleLimits {
  size_t max_metadata_record = 64 << 20;
  uint64_t max_zero_run = uint64_t{1} << 30;
};

// Rebuilds the archive into `out` (out.finish() is not called).
Status reassemble_tar(ByteSource& metadata, PayloadProvider& payloads, ByteSink& out,
                      const ReassembleLimits& limits = {});

}  // namespace deltasync
