// fuzz_distribution_codec: decode_distribution (common/protocol/
// distribution_codec.h), which reads the build host's distribution identity
// out of a peer's Commit or a bundle header: zstd, then a protobuf, then
// digests and documents that must agree with the image's layers.
//
// Input: [mode] [layers] bytes
//   mode & 1 == 0: bytes are the encoded identity (zstd)
//   mode & 1 == 1: bytes are the plain message; the target compresses it
//   layers: the number of diff_ids (0..15) the image is said to have
// An identity that decodes must have one layer per diff_id and hold the
// target and its manifest among its documents, and encode -> decode must
// give it back.
#include "common/codec/compression.h"
#include "common/crypto/digest.h"
#include "common/protocol/distribution_codec.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {
constexpr std::string_view kTarget = "distribution_codec";
}

int fuzz_distribution_codec(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t mode = in.byte();
  const uint8_t layers = in.byte() & 15;
  std::vector<Digest> chain;
  for (uint8_t i = 0; i < layers; ++i) chain.push_back(Digest::of("layer " + std::to_string(i)));
  std::string encoded;
  if (mode & 1) {
    auto compressed = zstd_compress(in.rest(), 1);
    if (!compressed) violation(kTarget, "zstd_compress: " + compressed.error().message());
    encoded = std::move(*compressed);
  } else {
    encoded = std::string(in.rest());
  }
  auto identity = decode_distribution(encoded, chain);
  if (!identity) return 0;
  if (identity->layers.size() != chain.size())
    violation(kTarget, "decoded " + std::to_string(identity->layers.size()) + " layers for " +
                           std::to_string(chain.size()) + " diff_ids");
  bool has_target = false, has_manifest = false;
  for (const auto& doc : identity->documents) {
    Digest d = Digest::of(doc);
    has_target |= d == identity->target.digest;
    has_manifest |= d == identity->manifest_digest;
  }
  if (!has_target || !has_manifest)
    violation(kTarget, "an identity without its target or manifest document was accepted");
  for (size_t i = 0; i < chain.size(); ++i) {
    if (identity->layers[i].diff_id != chain[i])
      violation(kTarget, "layer " + std::to_string(i) + " got another diff_id");
  }
  auto round = decode_distribution(encode_distribution(*identity), chain);
  if (!round)
    violation(kTarget, "a decoded identity does not decode again: " + round.error().message());
  if (round->target.digest != identity->target.digest ||
      round->manifest_digest != identity->manifest_digest ||
      round->documents != identity->documents || round->layers.size() != identity->layers.size())
    violation(kTarget, "encode -> decode changed the identity");
  return 0;
}

}  // namespace deltasync::fuzz
