// fuzz_layer_stream: the layer-stream decoder (common/layerstream/
// layer_decoder.cpp), which rebuilds a layer tar from a stream a peer sent,
// against a fixed basis: the two layers in tests/fuzz/data (GNU tar, gnu and
// posix formats, links, a long name, a whiteout).
//
// The decoder must refuse malformed streams with an Error, never write more
// than its limit (kMaxRebuiltLayer here) and never read outside the basis;
// what it reports must match what it wrote (size, and the sha256 of the
// bytes in the output file).
//
// Input: [mode] stream
//   mode & 1 == 0: stream is one layer stream, through decode()
//   mode & 1 == 1: stream is u32 big-endian-prefixed segments, through
//                  decode_segment() one after the other on one writer (a
//                  network transfer), until one says the layer is done
//   mode & 2 == 2: the stream (each segment) is the plain records; the target
//                  compresses them with the basis dictionary as the encoder
//                  does. Compressed streams carry a checksum, so mutations of
//                  them rarely get past zstd; this mode fuzzes the records.
#include <sys/stat.h>
#include <unistd.h>

#include "common/codec/compression.h"
#include "common/crypto/digest.h"
#include "common/layerstream/layer_stream.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "layer_stream";

std::string file_contents(int fd, uint64_t size) {
  std::string out(size, '\0');
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) violation(kTarget, "cannot read back the rebuilt layer");
    done += static_cast<size_t>(n);
  }
  return out;
}

// The records compressed as the encoder does (zstd, basis headers as prefix).
std::string compress_records(std::string_view records, const Basis& basis) {
  StringSink out;
  auto zstd = make_zstd_prefix_sink(out, basis.dictionary(), ZstdPrefixOptions{.level = 1});
  if (!zstd->write(records) || !zstd->finish()) violation(kTarget, "cannot compress records");
  return std::move(out.data());
}

}  // namespace

int fuzz_layer_stream(const uint8_t* data, size_t size) {
  const LayerBasis& basis = layer_basis();
  InputReader in(data, size);
  const uint8_t mode = in.byte();
  MemFile out = MemFile::create("");
  DecoderLimits limits;
  limits.max_layer_bytes = kMaxRebuiltLayer;
  LayerStreamDecoder decoder(*basis.basis, basis.files, limits);

  const bool plain = (mode & 2) != 0;
  if ((mode & 1) == 0) {
    std::string compressed = plain ? compress_records(in.rest(), *basis.basis) : std::string();
    MemorySource stream(plain ? std::string_view(compressed) : in.rest());
    auto decoded = decoder.decode(stream, out.fd(), "fuzz layer");
    const uint64_t written = out.size();
    if (written > kMaxRebuiltLayer)
      violation(kTarget, "wrote " + std::to_string(written) + " bytes, over the limit");
    if (!decoded) return 0;
    if (decoded->size != written)
      violation(kTarget, "decode() reports " + std::to_string(decoded->size) +
                             " bytes, the file holds " + std::to_string(written));
    if (decoded->digest != Digest::of(file_contents(out.fd(), written)))
      violation(kTarget, "decode() reports a digest that is not the file's");
    return 0;
  }

  auto writer = RebuiltLayerWriter::open(out.fd(), 0, kMaxRebuiltLayer);
  if (!writer) violation(kTarget, "RebuiltLayerWriter::open: " + writer.error().message());
  uint64_t entries = 0;
  bool done = false;
  for (std::string_view segment : split_frames(in.rest())) {
    std::string compressed = plain ? compress_records(segment, *basis.basis) : std::string();
    MemorySource stream(plain ? std::string_view(compressed) : segment);
    auto decoded = decoder.decode_segment(stream, **writer, entries, "fuzz segment");
    if (!decoded) break;
    entries += decoded->entries;
    if (decoded->layer_done) {
      done = true;
      break;
    }
  }
  Status flushed = (*writer)->flush();
  const uint64_t written = out.size();
  if (written > kMaxRebuiltLayer)
    violation(kTarget, "wrote " + std::to_string(written) + " bytes, over the limit");
  if (done && flushed) {
    if ((*writer)->offset() != written)
      violation(kTarget, "the writer's offset is not the file's size");
    if ((*writer)->digest() != Digest::of(file_contents(out.fd(), written)))
      violation(kTarget, "the writer's digest is not the file's");
  }
  return 0;
}

}  // namespace deltasync::fuzz
