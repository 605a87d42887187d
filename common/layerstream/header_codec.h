// Codes a tar entry's header against the basis header of the same path.
//
// A rebuilt layer repeats most headers with one or two fields changed
// (mtime, size). Instead of the 512 raw bytes (whose checksums all differ,
// which defeats a generic compressor), we send which fields differ and their
// new values: numeric fields as small signed deltas, written back in the
// basis field's own formatting, and the checksum recomputed rather than sent.
// The encoder proves every coding by decoding it and comparing bytes; any
// header it cannot reproduce exactly is sent raw. Extension headers (PAX,
// GNU long names) are coded only when byte-identical to the basis's.
//
// Thread safety: HeaderCoder carries state between consecutive entries of
// one stream (the previous mtime); one per stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/io/stream.h"
#include "common/util/result.h"

namespace deltasync {

class HeaderCoder {
 public:
  // Appends the field coding of `target` against `basis` to `out`, or
  // returns false (appending nothing) when it cannot be coded exactly.
  bool encode(std::string_view basis, std::string_view target, std::string& out);
  // Rebuilds the target header from `basis` and the coding at the front of
  // `in` (consumed).
  Result<std::string> decode(std::string_view basis, std::string_view& in);
  // Same, reading exactly one coding from a stream.
  Result<std::string> decode(std::string_view basis, ByteSource& in);

 private:
  int64_t previous_mtime_ = 0;
};

}  // namespace deltasync
