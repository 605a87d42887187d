// The bundle file: an offline transfer of layer streams.
//
//   "DSBUNDL2"                       8-byte magic (format version 2; readers
//                                    also take version 1, which is unsigned)
//   frame*                           u32 little-endian length, then a
//                                    deltasync.wire.BundleFrame (protobuf)
//   header, {layer_begin, layer_data*, layer_end}*, trailer
// The trailer holds the sha256 of every byte before its length prefix and
// (format 2) the writer's signature over it (common/crypto/signing.h);
// readers verify it before acting on anything, so a truncated bundle or one
// bit flipped anywhere is refused before the engine is touched, and the
// caller checks the signature against its trust before it rebuilds. Frames are
// at most kMaxFrameBytes; a larger length is refused before allocating.
// Format and field meanings: docs/bundle-format.md.
//
// Thread safety: one owner per writer/reader.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/crypto/digest.h"
#include "common/crypto/signing.h"
#include "common/io/file.h"
#include "common/io/stream.h"
#include "proto/deltasync.pb.h"

namespace deltasync {

constexpr uint32_t kBundleFormatVersion = 2;
constexpr size_t kMaxFrameBytes = 4 << 20;
constexpr size_t kLayerDataChunk = 1 << 20;

class BundleWriter {
 public:
  explicit BundleWriter(ByteSink& out);
  // Signs the trailer with `signer` (borrowed; null: an unsigned bundle).
  void set_signer(const BundleSigner* signer) { signer_ = signer; }
  Status write_header(const wire::BundleHeader& header);
  Status begin_layer(uint32_t target_index);
  // A sink for the current layer's stream bytes (chunked into frames).
  ByteSink& layer_data() { return layer_sink_; }
  Status end_layer(uint32_t target_index);
  Status finish();  // writes the trailer
  uint64_t bytes_written() const { return written_; }

 private:
  Status write_frame(const wire::BundleFrame& frame);
  Status write_raw(std::string_view data);
  class LayerSink final : public ByteSink {
   public:
    explicit LayerSink(BundleWriter& w) : writer_(w) {}
    Status write(std::string_view data) override;
    Status flush();
    uint64_t total = 0;

   private:
    BundleWriter& writer_;
    std::string pending_;
  };
  ByteSink& out_;
  const BundleSigner* signer_ = nullptr;
  Sha256 hasher_;
  LayerSink layer_sink_{*this};
  uint64_t written_ = 0;
  bool magic_written_ = false;
};

// Reads a bundle file: verify() first, then header(), then each layer.
class BundleReader {
 public:
  static Result<std::unique_ptr<BundleReader>> open(const std::filesystem::path& path);
  // Reads the whole file once, checking framing and the trailer checksum.
  Status verify();
  const wire::BundleHeader& header() const { return header_; }
  // After verify(): the format version, the checksum the trailer vouches
  // for, and the signature over it (scheme kNone when unsigned).
  uint32_t format_version() const { return format_version_; }
  const Digest& digest() const { return digest_; }
  const BundleSignature& signature() const { return signature_; }
  // Positions at the next layer; returns its begin frame.
  Result<wire::LayerBegin> next_layer();
  // The current layer's stream bytes; ends at its layer_end frame.
  ByteSource& layer_stream() { return layer_source_; }

 private:
  explicit BundleReader(std::filesystem::path path, std::unique_ptr<FileSource> file);
  Result<bool> read_frame(wire::BundleFrame& frame, std::string* raw_out = nullptr);
  class LayerSource final : public ByteSource {
   public:
    explicit LayerSource(BundleReader& r) : reader_(r) {}
    Result<size_t> read(std::span<char> buffer) override;
    std::string chunk;
    size_t pos = 0;
    bool ended = true;

   private:
    BundleReader& reader_;
  };
  std::filesystem::path path_;
  std::unique_ptr<FileSource> file_;
  std::unique_ptr<BufferedSource> input_;
  wire::BundleHeader header_;
  uint32_t format_version_ = 0;
  Digest digest_;
  BundleSignature signature_;
  LayerSource layer_source_{*this};
  uint32_t current_layer_ = 0;
};

}  // namespace deltasync
