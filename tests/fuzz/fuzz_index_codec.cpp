// fuzz_index_codec: decode_layer_index (common/index/index_codec.h), which
// reads the basis index a receiver sends a sender, and the indexes kept in
// the receiver's store.
//
// An encoded index is zstd-compressed and ends in the sha256 of what
// precedes it, which random mutations almost never get right; in mode 1 the
// target adds both (as encode_layer_index does), so the fuzzer reaches the
// entry parser. An index that decodes must encode again, and that encoding
// must decode to the same index (paths, kinds, sizes, offsets, digests).
//
// Input: [mode] bytes
//   mode & 1 == 0: bytes are an encoded index
//   mode & 1 == 1: bytes are the plain body ("DSIX" ...); the target appends
//                  its sha256 and compresses it
#include "common/codec/compression.h"
#include "common/crypto/digest.h"
#include "common/index/index_codec.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "index_codec";

bool same_record(const FileRecord& a, const FileRecord& b) {
  // Digests of empty files are not stored: they decode as the (possibly
  // truncated) digest of nothing, and the round trip uses 32-byte digests.
  return a.path == b.path && a.kind == b.kind && a.size == b.size &&
         (a.size == 0 || a.digest == b.digest) && a.link_target == b.link_target &&
         a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime == b.mtime &&
         a.mtime_text == b.mtime_text && a.xattrs == b.xattrs && a.entry_index == b.entry_index &&
         a.payload_offset == b.payload_offset && a.raw_metadata == b.raw_metadata;
}

}  // namespace

int fuzz_index_codec(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t mode = in.byte();
  std::string encoded;
  if (mode & 1) {
    std::string plain(in.rest());
    Digest check = Digest::of(plain);
    plain.append(reinterpret_cast<const char*>(check.raw().data()), 32);
    auto compressed = zstd_compress(plain, 1);
    if (!compressed) violation(kTarget, "zstd_compress: " + compressed.error().message());
    encoded = std::move(*compressed);
  } else {
    encoded = std::string(in.rest());
  }
  auto index = decode_layer_index(encoded, "fuzz index");
  if (!index) return 0;
  uint64_t offset = 0;
  for (const FileRecord& r : index->entries) {
    if (r.payload_offset < offset || r.size > index->tar_size ||
        r.payload_offset > index->tar_size - r.size)
      violation(kTarget, "entry " + std::to_string(r.entry_index) +
                             ": its payload lies outside the layer or before the previous one");
    offset = r.payload_offset + r.size;
  }
  auto again = encode_layer_index(*index, 32);
  if (!again) violation(kTarget, "a decoded index does not encode: " + again.error().message());
  auto round = decode_layer_index(*again, "fuzz index again");
  if (!round) violation(kTarget, "a re-encoded index does not decode: " + round.error().message());
  if (round->diff_id != index->diff_id || round->tar_size != index->tar_size ||
      round->entries.size() != index->entries.size())
    violation(kTarget, "a re-encoded index decodes to another index");
  for (size_t i = 0; i < round->entries.size(); ++i) {
    if (!same_record(round->entries[i], index->entries[i]))
      violation(kTarget, "entry " + std::to_string(i) + " changed in an encode/decode round trip");
  }
  return 0;
}

}  // namespace deltasync::fuzz
