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
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/crypto/digest.h"
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
  uint64_t literal_files = 0;
  uint64_t literal_bytes = 0;
  uint64_t delta_files = 0;
  uint64_t delta_source_bytes = 0;  // new-file bytes coded as deltas
  uint64_t delta_bytes = 0;         // delta bytes before the outer zstd
  uint64_t record_bytes = 0;        // stream bytes before the outer zstd
  uint64_t stream_bytes = 0;        // after it
  void add(const LayerStreamStats& other);
};

struct EncoderOptions {
  Effort effort = Effort::kDefault;
  int threads = 2;
};

class LayerStreamEncoder {
 public:
  // `basis_files.fds[i]` is base layer i's tar; all borrowed, must outlive this.
  LayerStreamEncoder(const Basis& basis, const LayerFiles& basis_files, EncoderOptions options);
  ~LayerStreamEncoder();

  // Encodes a layer whose tar is `layer_fd` and whose index is `index`,
  // writing the compressed stream to `out` (not finished).
  Status encode(const LayerIndex& index, int layer_fd, ByteSink& out, LayerStreamStats& stats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct DecoderLimits {
  uint64_t max_layer_bytes = uint64_t{1}
                             << 42;  // 4 TiB: a rebuilt layer larger than this is refused
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync
