// Layer streams: one missing layer, coded against the basis.
//
// A layer stream rebuilds a layer tar exactly from what the receiver holds.
// It walks the layer's entries in archive order; each entry is its header
// (raw, or coded field by field against the basis header of the same path)
// and a payload op: same bytes as that basis entry, as another basis content,
// as an earlier entry of this image, a literal, or a block delta (librsync,
// or zstd with the basis file as prefix) against a basis file. The record
// stream is compressed with zstd using the basis headers as a prefix
// dictionary. Format: docs/bundle-format.md.
//
// Memory: the encoder holds at most `threads` delta jobs (each bounded by a
// delta segment) and the decoder one record; neither depends on layer size.
//
// Thread safety: an encoder or decoder belongs to one thread (the encoder
// runs its own delta workers internally). The Basis is shared read-only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/crypto/digest.h"
#include "common/delta/signature_rounds.h"
#include "common/io/file.h"
#include "common/io/stream.h"
#include "common/layerstream/basis.h"

namespace deltasync {

enum class Effort { kFast, kDefault, kMax };
Result<Effort> parse_effort(const std::string& text);
std::string_view effort_name(Effort effort);

// Uncompressed layer tars on disk, by position in an image; borrowed fds.
struct LayerFiles {
  std::vector<int> fds;
};

// Where the payloads of entries already rebuilt (or encoded) in this image
// are, so later entries can say "same as entry N".
struct EarlierEntry {
  int fd = -1;  // layer tar being written or written
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct LayerStreamStats {
  uint64_t entries = 0;
  uint64_t headers_coded = 0;  // coded against a basis header
  uint64_t headers_raw = 0;
  uint64_t same_as_basis = 0;  // 'S' and 'C'
  uint64_t same_as_earlier = 0;
  uint64_t reused_bytes = 0;  // file bytes of 'S', 'C' and 'E': nothing of them is sent
  uint64_t literal_files = 0;
  uint64_t literal_bytes = 0;
  uint64_t delta_files = 0;
  uint64_t delta_source_bytes = 0;  // new-file bytes coded as deltas
  uint64_t delta_bytes = 0;         // delta bytes before the outer zstd
  uint64_t record_bytes = 0;        // stream bytes before the outer zstd
  uint64_t stream_bytes = 0;        // after it
  void add(const LayerStreamStats& other);
};

// librsync signatures of basis contents, received from the site: the
// network case where the sender does not hold the basis bytes. Each content
// has one or more rounds (common/delta/signature_rounds.h). Shared read-only
// by the delta workers.
class BasisSignatures {
 public:
  virtual ~BasisSignatures() = default;
  // The signature rounds of basis content `content_id`, or null if the site sent none.
  virtual const std::vector<SignatureRound>* find(uint32_t content_id) const = 0;
  // The delta the rounds were asked for, already matched, when it is the one
  // of the new file whose bytes start at `target_offset` of the layer tar
  // (the encoder then writes it instead of matching again); else null.
  virtual const RoundsDelta* matched(uint32_t content_id, uint64_t target_offset) const {
    (void)content_id, (void)target_offset;
    return nullptr;
  }
};

struct EncoderOptions {
  Effort effort = Effort::kDefault;
  int threads = 2;
  // Set when the sender does not hold the basis bytes: deltas are then
  // librsync deltas against these signatures and basis files are never read.
  const BasisSignatures* signatures = nullptr;
  // Called on the encoding thread after each entry with the layer bytes
  // coded so far (for progress displays; keep it cheap).
  std::function<void(uint64_t layer_bytes_done)> on_progress;
};

// Where the segments of a layer stream go. A segment is an independent zstd
// stream that ends at an entry boundary; the receiver checkpoints after each,
// so a transfer that is cut resumes at the first unfinished segment and
// re-sends at most one segment.
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  virtual Result<ByteSink*> begin_segment(uint64_t first_entry) = 0;
  // `next_entry` is the layer's entry count when `layer_done`.
  virtual Status end_segment(uint64_t next_entry, bool layer_done) = 0;
};

// A basis content a delta would be computed against (network mode asks the
// site for its signature, with the new file's size to choose block sizes).
struct DeltaCandidate {
  uint32_t content_id = 0;
  uint64_t target_size = 0;    // the largest new file that would use it
  uint64_t target_offset = 0;  // where that file's bytes start in the layer tar
  uint64_t basis_size = 0;
};

class LayerStreamEncoder {
 public:
  // `basis_files.fds[i]` is base layer i's tar; all borrowed, must outlive this.
  LayerStreamEncoder(const Basis& basis, const LayerFiles& basis_files, EncoderOptions options);
  ~LayerStreamEncoder();

  // Encodes a layer whose tar is `layer_fd` and whose index is `index`,
  // writing the compressed stream to `out` (not finished).
  Status encode(const LayerIndex& index, int layer_fd, ByteSink& out, LayerStreamStats& stats);

  // Encodes entries [first_entry, end) of a layer as segments of about
  // `segment_bytes` of records each (a segment holding one larger entry is
  // that entry alone; a segment also runs on until the delta group it opened
  // is complete, so that each segment decodes on its own). Entries before
  // `first_entry` must have been passed to skip_entries() (or encoded) first.
  Status encode_segments(const LayerIndex& index, int layer_fd, uint64_t first_entry,
                         uint64_t segment_bytes, SegmentSink& out, LayerStreamStats& stats);

  // Records entries [begin, end) of a layer the receiver already holds, so
  // that "same as an earlier entry" numbers alike on both sides.
  void skip_entries(const LayerIndex& index, uint64_t begin, uint64_t end);

  // The basis contents the deltas of entries [first_entry, end) would use.
  std::vector<DeltaCandidate> delta_candidates(const LayerIndex& index, uint64_t first_entry) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DecoderLimits {
  uint64_t max_layer_bytes = uint64_t{1}
                             << 42;  // 4 TiB: a rebuilt layer larger than this is refused
};

// The output of a layer being rebuilt: sequential writes to a file, hashed
// as they go; a partial file left by an interrupted transfer can be resumed
// (its bytes are hashed again from disk). Belongs to one thread.
class RebuiltLayerWriter final : public ByteSink {
 public:
  // `fd` is borrowed. Keeps its first `resume_bytes` bytes (hashing them) and
  // cuts anything after them.
  static Result<std::unique_ptr<RebuiltLayerWriter>> open(int fd, uint64_t resume_bytes,
                                                          uint64_t limit);
  Status write(std::string_view data) override;
  Status flush();
  // Flushes and fdatasyncs: what is written survives a crash.
  Status sync();
  uint64_t offset() const { return offset_; }
  int fd() const { return fd_; }
  Digest digest() { return hasher_.finish(); }  // call once, after the last write

 private:
  RebuiltLayerWriter(int fd, uint64_t limit);
  Status write_fd(std::string_view data);
  int fd_;
  uint64_t limit_;
  std::string buffer_;
  size_t used_ = 0;
  uint64_t offset_ = 0;
  Sha256 hasher_;
};

class LayerStreamDecoder {
 public:
  LayerStreamDecoder(const Basis& basis, const LayerFiles& basis_files, DecoderLimits limits = {});
  ~LayerStreamDecoder();

  // Rebuilds one layer from its compressed stream into `out_fd` (a file
  // positioned at 0, written with pwrite-free sequential writes), returning
  // the layer's sha256 and size. Entries are remembered for later layers.
  struct Output {
    Digest digest;
    uint64_t size = 0;
  };
  Result<Output> decode(ByteSource& stream, int out_fd, const std::string& name);

  // Decodes one segment (one zstd stream) onto `out`. `first_entry` is the
  // layer's entry number the segment starts at (for messages).
  struct SegmentOutput {
    bool layer_done = false;
    uint64_t entries = 0;  // entries in this segment
  };
  Result<SegmentOutput> decode_segment(ByteSource& stream, RebuiltLayerWriter& out,
                                       uint64_t first_entry, const std::string& name);

  // Registers entries [begin, end) of a layer already rebuilt in `fd` (a
  // resumed transfer), mirroring LayerStreamEncoder::skip_entries.
  void register_entries(const LayerIndex& index, int fd, uint64_t begin, uint64_t end);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync
