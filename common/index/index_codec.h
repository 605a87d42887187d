// A compact, self-checking serialization of a LayerIndex, for two uses:
//   - the receiver keeps the index of every layer in its store beside the
//     tar (so a basis is indexed once, not on every transfer);
//   - over the network, the receiver sends the index of its basis layers to a
//     sender that does not hold them, so both ends build the same Basis.
// Only the raw tar headers and the content digests are stored; everything
// else (paths, kinds, sizes, offsets) is re-derived by parsing the headers
// with the same code that split the layer, so the two cannot disagree.
// Digests may be truncated to `digest_bytes` (the rest zero): on the wire a
// 12-byte prefix is plenty, since every layer rebuilt from it is verified
// against its diff_id anyway (a prefix collision fails verification, it
// cannot produce a wrong image).
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "common/index/layer_index.h"

namespace deltasync {

// zstd-compressed; `digest_bytes` in [8, 32].
Result<std::string> encode_layer_index(const LayerIndex& index, size_t digest_bytes = 32);
// Refuses malformed or oversized input (kCorrupt, naming `what`).
Result<LayerIndex> decode_layer_index(std::string_view bytes, std::string_view what);

// `digest` with everything after the first `bytes` bytes zeroed.
Digest truncate_digest(const Digest& digest, size_t bytes);

}  // namespace deltasync
