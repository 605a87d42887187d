// LEB128 unsigned varints for our compact binary records (tar metadata
// streams, bundle headers). Decoding is bounded: at most 10 bytes, and the
// reader reports truncation instead of reading past the end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/io/stream.h"
#include "common/util/result.h"

namespace deltasync {

inline void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Consumes a varint from the front of `in`.
inline Result<uint64_t> get_varint(std::string_view& in) {
  uint64_t value = 0;
  for (int shift = 0, i = 0; i < 10; ++i, shift += 7) {
    if (in.empty()) return make_error(ErrorCode::kCorrupt, "varint is truncated");
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return value;
  }
  return make_error(ErrorCode::kCorrupt, "varint is longer than 10 bytes");
}

// Reads one varint from a stream; truncation names `what`.
inline Result<uint64_t> read_varint(ByteSource& in, std::string_view what) {
  uint64_t value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    char c;
    DS_RETURN_IF_ERROR(read_exact(in, std::span<char>(&c, 1), what));
    auto byte = static_cast<uint8_t>(c);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return value;
  }
  return make_error(ErrorCode::kCorrupt, std::string(what) + ": varint is longer than 10 bytes");
}

// Signed deltas as small unsigned numbers: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
inline uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

}  // namespace deltasync
