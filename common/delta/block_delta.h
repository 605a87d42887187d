// Block-level deltas for one file: librsync signatures / deltas / patches,
// and a "local" delta for when the encoder holds the basis itself (zstd
// with the basis as prefix dictionary, long mode).
//
// The rsync path is the network case: the receiver computes a signature of
// its basis file, the sender computes a delta of the new file against that
// signature, the receiver patches. The local path gives smaller deltas when
// the sender has the same basis bytes (bundles, or a sender holding the base
// image). Both stream: memory is bounded by the signature (about
// basis_size / block_len * (4 + strong_len) bytes) or, for local deltas, by
// one segment of the file and its basis window, never by the file size.
//
// Only rsync_delta.cpp includes <librsync.h> and only local_delta.cpp
// includes <zstd.h>.
//
// Both patchers stream into `out` and do not retract bytes already written
// when they fail; write into something that can be discarded (AtomicFile).
//
// Thread safety: functions are reentrant; objects belong to one thread (an
// RsyncSignature too: librsync updates lookup counters in it while a delta
// is computed).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/io/stream.h"

namespace deltasync {

// Random access to a basis file (e.g. a byte range of a layer tar on disk).
class RandomAccessInput {
 public:
  virtual ~RandomAccessInput() = default;
  virtual uint64_t size() const = 0;
  // Reads up to buffer.size() bytes at offset; short only at the end.
  virtual Result<size_t> read_at(uint64_t offset, std::span<char> buffer) = 0;
};

// A RandomAccessInput over bytes in memory (the view must outlive it).
class MemoryRandomAccess final : public RandomAccessInput {
 public:
  explicit MemoryRandomAccess(std::string_view data) : data_(data) {}
  uint64_t size() const override { return data_.size(); }
  Result<size_t> read_at(uint64_t offset, std::span<char> buffer) override;

 private:
  std::string_view data_;
};

// A range [offset, offset+length) of a borrowed file descriptor (pread).
class FileRangeRandomAccess final : public RandomAccessInput {
 public:
  FileRangeRandomAccess(int fd, uint64_t offset, uint64_t length)
      : fd_(fd), offset_(offset), length_(length) {}
  uint64_t size() const override { return length_; }
  Result<size_t> read_at(uint64_t offset, std::span<char> buffer) override;

 private:
  int fd_;
  uint64_t offset_;
  uint64_t length_;
};

// --- librsync ---------------------------------------------------------------

struct SignatureParams {
  uint32_t block_len = 0;   // bytes per block
  uint32_t strong_len = 0;  // bytes of the strong (BLAKE2) sum kept per block
};

// The block sizes rsync_signature accepts (choose_signature_params keeps to
// 1 KiB - 64 KiB; signature rounds go further both ways).
constexpr uint32_t kSignatureBlockMin = 64;
constexpr uint32_t kSignatureBlockMax = 1 << 20;

// Block size ~ sqrt(size) clamped to [1 KiB, 64 KiB]; strong sum long enough
// that a false match across the whole file is below 2^-40 (not the default).
SignatureParams choose_signature_params(uint64_t basis_size, uint64_t new_size);

// The strong-sum length that keeps a false match below 2^-40 when
// `searched_bytes` positions are compared with `blocks` blocks.
uint32_t strong_sum_length(uint64_t searched_bytes, uint64_t blocks);

// Computes the signature of a basis stream (the bytes that go on the wire).
Result<std::string> rsync_signature(ByteSource& basis, const SignatureParams& params);

// A signature loaded and indexed for delta generation.
class RsyncSignature {
 public:
  static Result<std::unique_ptr<RsyncSignature>> load(std::string_view signature_bytes);
  ~RsyncSignature();
  RsyncSignature(const RsyncSignature&) = delete;
  RsyncSignature& operator=(const RsyncSignature&) = delete;
  struct Impl;
  Impl* impl() const { return impl_.get(); }

 private:
  explicit RsyncSignature(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes the librsync delta of `new_file` against `signature` to `delta`.
Status rsync_delta(const RsyncSignature& signature, ByteSource& new_file, ByteSink& delta);

// Applies a librsync delta to `basis`, writing the new file to `out`. Fails
// (kCorrupt) if the delta is malformed, refers outside the basis, or would
// write more than `max_output` bytes.
Status rsync_patch(RandomAccessInput& basis, ByteSource& delta, ByteSink& out, uint64_t max_output);

// The commands of a librsync delta, for deltas assembled from several
// signature rounds (signature_rounds.h). COPY positions are basis offsets.
struct RsyncCommand {
  enum class Kind : uint8_t { kLiteral, kCopy };
  Kind kind = Kind::kLiteral;
  uint64_t basis_offset = 0;  // kCopy only
  uint64_t length = 0;
};

// The commands of a delta made by rsync_delta (literal data skipped). Fails
// (kCorrupt) on anything but a well-formed delta ending in END.
Result<std::vector<RsyncCommand>> parse_rsync_delta(std::string_view delta);

// Writes `commands` as a librsync delta that rsync_patch applies: literal
// bytes are read from `new_file` at the position the commands have reached.
Status write_rsync_delta(std::span<const RsyncCommand> commands, RandomAccessInput& new_file,
                         ByteSink& delta);

// --- local delta (zstd, basis as prefix) --------------------------------------

// segment_bytes + 2 * window_margin may be at most 1 GiB (the decoder refuses
// larger frames, which bounds what a hostile delta can make it allocate).
// Memory per thread: one segment, its window and its compressed frame.
// High levels are slow here: zstd indexes the whole window into binary trees
// (about 0.5 MiB/s at level 19 with 16 MiB segments and 4 MiB margins, vs
// ~200 MiB/s at level 3, for a delta ~20% smaller).
struct LocalDeltaParams {
  int level = 3;                         // zstd level (effort)
  uint64_t segment_bytes = 64ull << 20;  // target bytes per independent segment
  // Basis bytes before/after the segment's position used as its prefix.
  uint64_t window_margin = 16ull << 20;
  int threads = 1;  // worker threads for segments
};

// Encodes `new_file` against `basis`. The output is self-delimiting (a small
// header, then one zstd frame per segment).
Status local_delta_encode(RandomAccessInput& basis, RandomAccessInput& new_file,
                          const LocalDeltaParams& params, ByteSink& delta);
// Decodes; fails (kCorrupt) on malformed input or output beyond max_output.
Status local_delta_decode(RandomAccessInput& basis, ByteSource& delta, ByteSink& out,
                          uint64_t max_output);

}  // namespace deltasync

namespace deltasync {

// --- anchored delta -----------------------------------------------------------
//
// For a new file that is mostly its basis with local changes (edits in
// place, insertions, deletions): a cheap pass compares 64 KiB chunks with the
// basis at the current alignment (re-anchoring after an insertion or deletion
// by searching the chunk's first bytes near the expected place) and emits
// COPY commands for unchanged runs; only the changed regions are compressed,
// with zstd at `level` and the nearby basis as prefix. The expensive work is
// proportional to what changed, not to the file, which is what lets
// `--effort max` afford zstd level 19.
struct AnchoredDeltaParams {
  int level = 3;
  uint64_t chunk_bytes = 64 * 1024;
  uint64_t search_radius = 1 << 20;     // how far an insertion/deletion is looked for
  uint64_t window_margin = 256 * 1024;  // basis bytes around a changed region used as prefix
  uint64_t max_region = 8ull << 20;     // changed regions are cut into pieces of at most this
};
Status anchored_delta_encode(RandomAccessInput& basis, RandomAccessInput& new_file,
                             const AnchoredDeltaParams& params, ByteSink& delta);
Status anchored_delta_decode(RandomAccessInput& basis, ByteSource& delta, ByteSink& out,
                             uint64_t max_output);

}  // namespace deltasync
