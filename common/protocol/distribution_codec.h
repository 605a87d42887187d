// The distribution identity on the wire (ImageDescription.distribution_zstd):
// our DistributionIdentity <-> the protobuf message, zstd-compressed, since
// its JSON documents (a few KiB) shrink to about a third. Decoding bounds
// every size before allocating and checks what can be checked without the
// engine: one layer per diff_id, the target and manifest among the
// documents, every document naming itself by digest. The engine checks the
// rest (each blob against the descriptors) when it imports the archive.
//
// Thread safety: free functions; no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/image/distribution.h"

namespace deltasync {

std::string encode_distribution(const DistributionIdentity& identity);
Result<DistributionIdentity> decode_distribution(std::string_view encoded,
                                                 const std::vector<Digest>& diff_ids);

}  // namespace deltasync
