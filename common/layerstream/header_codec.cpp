// Field-wise header coding. Layout of one coding:
//   varint mask        bit i set: field i differs from the basis
//   per set field, in field order:
//     numeric fields:  varint (zigzag(delta) << 1)        value re-formatted like the basis field
//                      or varint 1, then the raw field bytes
//     other fields:    the raw field bytes (their length is fixed)
// mtime deltas are taken against the previous entry's mtime in the stream
// (a rebuild gives most files the same new time), other numbers against the
// basis value. The checksum field is coded only if recomputing it in the
// basis field's format does not reproduce it.
#include "common/layerstream/header_codec.h"

#include <array>
#include <cstring>

#include "common/tar/tar_entry.h"
#include "common/util/varint.h"

namespace deltasync {

namespace {

struct Field {
  size_t offset;
  size_t length;
  bool numeric;
};

constexpr std::array<Field, 17> kFields{{
    {0, 100, false},    // 0 name
    {100, 8, true},     // 1 mode
    {108, 8, true},     // 2 uid
    {116, 8, true},     // 3 gid
    {124, 12, true},    // 4 size
    {136, 12, true},    // 5 mtime
    {148, 8, false},    // 6 checksum (recomputed unless coded)
    {156, 1, false},    // 7 typeflag
    {157, 100, false},  // 8 linkname
    {257, 6, false},    // 9 magic
    {263, 2, false},    // 10 version
    {265, 32, false},   // 11 uname
    {297, 32, false},   // 12 gname
    {329, 8, true},     // 13 devmajor
    {337, 8, true},     // 14 devminor
    {345, 155, false},  // 15 prefix
    {500, 12, false},   // 16 padding
}};
constexpr size_t kChecksumField = 6;
constexpr size_t kMtimeField = 5;

// An octal field is: optional leading spaces/zeros, digits, terminators.
// Returns the value if the field is plain octal (not base-256).
std::optional<uint64_t> octal_value(std::string_view f) {
  if (!f.empty() && (static_cast<uint8_t>(f[0]) & 0x80)) return std::nullopt;
  auto v = parse_tar_number(f, "field");
  if (!v) return std::nullopt;
  return *v;
}

// Writes `value` in the basis field's layout: same digit span, same
// terminators. Returns nullopt if it does not fit.
std::optional<std::string> format_like(std::string_view basis_field, uint64_t value) {
  size_t start = 0;
  while (start < basis_field.size() && basis_field[start] == ' ') ++start;
  size_t end = start;
  while (end < basis_field.size() && basis_field[end] >= '0' && basis_field[end] <= '7') ++end;
  if (end == start) return std::nullopt;
  std::string out(basis_field);
  for (size_t i = end; i-- > start;) {
    out[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  if (value != 0) return std::nullopt;
  return out;
}

std::string checksum_like(std::string_view basis_field, std::string_view block) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) {
    bool in_field = i >= 148 && i < 156;
    sum += in_field ? static_cast<uint8_t>(' ') : static_cast<uint8_t>(block[i]);
  }
  auto formatted = format_like(basis_field, sum);
  return formatted ? *formatted : std::string();
}

}  // namespace

bool HeaderCoder::encode(std::string_view basis, std::string_view target, std::string& out) {
  if (basis.size() != target.size() || basis.size() < kTarBlock || basis.size() % kTarBlock != 0)
    return false;
  size_t ext = basis.size() - kTarBlock;
  if (basis.substr(0, ext) != target.substr(0, ext)) return false;
  std::string_view b = basis.substr(ext);
  std::string_view t = target.substr(ext);

  std::string coded;
  uint64_t mask = 0;
  int64_t mtime = previous_mtime_;
  for (size_t i = 0; i < kFields.size(); ++i) {
    const Field& f = kFields[i];
    std::string_view bf = b.substr(f.offset, f.length);
    std::string_view tf = t.substr(f.offset, f.length);
    if (i == kChecksumField) {
      // Recomputed in the basis format, unless that does not reproduce it.
      if (checksum_like(bf, t) == tf) continue;
      mask |= uint64_t{1} << i;
      coded.append(tf);
      continue;
    }
    if (bf == tf) continue;
    mask |= uint64_t{1} << i;
    if (f.numeric) {
      auto bv = octal_value(bf);
      auto tv = octal_value(tf);
      if (bv && tv) {
        auto formatted = format_like(bf, *tv);
        if (formatted && *formatted == tf) {
          int64_t reference = i == kMtimeField ? previous_mtime_ : static_cast<int64_t>(*bv);
          put_varint(coded, zigzag(static_cast<int64_t>(*tv) - reference) << 1);
          if (i == kMtimeField) mtime = static_cast<int64_t>(*tv);
          continue;
        }
      }
      put_varint(coded, 1);
    }
    coded.append(tf);
  }
  std::string encoded;
  put_varint(encoded, mask);
  encoded += coded;

  // Prove it.
  HeaderCoder probe_coder = *this;
  std::string_view view = encoded;
  auto decoded = probe_coder.decode(basis, view);
  if (!decoded || *decoded != target || !view.empty()) return false;
  previous_mtime_ = mtime;
  out += encoded;
  return true;
}

Result<std::string> HeaderCoder::decode(std::string_view basis, std::string_view& in) {
  if (basis.size() < kTarBlock || basis.size() % kTarBlock != 0) {
    return make_error(ErrorCode::kCorrupt,
                      "header coding refers to a basis entry without a header");
  }
  DS_ASSIGN_OR_RETURN(uint64_t mask, get_varint(in));
  if (mask >> kFields.size())
    return make_error(ErrorCode::kCorrupt, "header coding has an unknown field");
  std::string out(basis);
  char* block = out.data() + out.size() - kTarBlock;
  std::string_view b = basis.substr(basis.size() - kTarBlock);
  bool checksum_given = false;
  for (size_t i = 0; i < kFields.size(); ++i) {
    if (!(mask & (uint64_t{1} << i))) continue;
    const Field& f = kFields[i];
    if (f.numeric) {
      DS_ASSIGN_OR_RETURN(uint64_t v, get_varint(in));
      if (!(v & 1)) {
        std::string_view bf = b.substr(f.offset, f.length);
        auto bv = octal_value(bf);
        if (!bv) return make_error(ErrorCode::kCorrupt, "header coding: basis field is not octal");
        int64_t reference = i == kMtimeField ? previous_mtime_ : static_cast<int64_t>(*bv);
        int64_t value = reference + unzigzag(v >> 1);
        if (value < 0)
          return make_error(ErrorCode::kCorrupt, "header coding: negative field value");
        auto formatted = format_like(bf, static_cast<uint64_t>(value));
        if (!formatted)
          return make_error(ErrorCode::kCorrupt, "header coding: value does not fit its field");
        std::memcpy(block + f.offset, formatted->data(), f.length);
        if (i == kMtimeField) previous_mtime_ = value;
        continue;
      }
    }
    if (in.size() < f.length) return make_error(ErrorCode::kCorrupt, "header coding is truncated");
    std::memcpy(block + f.offset, in.data(), f.length);
    in.remove_prefix(f.length);
    if (i == kChecksumField) checksum_given = true;
  }
  if (!checksum_given) {
    std::string sum = checksum_like(b.substr(148, 8), std::string_view(block, kTarBlock));
    if (sum.size() != 8)
      return make_error(ErrorCode::kCorrupt, "header coding: basis checksum field is malformed");
    std::memcpy(block + 148, sum.data(), 8);
  }
  return out;
}

Result<std::string> HeaderCoder::decode(std::string_view basis, ByteSource& in) {
  // Collect the coding's bytes (its length follows from the mask and the
  // numeric markers), then decode from memory.
  std::string coding;
  DS_ASSIGN_OR_RETURN(uint64_t mask, read_varint(in, "header coding"));
  if (mask >> kFields.size())
    return make_error(ErrorCode::kCorrupt, "header coding has an unknown field");
  put_varint(coding, mask);
  for (size_t i = 0; i < kFields.size(); ++i) {
    if (!(mask & (uint64_t{1} << i))) continue;
    bool raw = true;
    if (kFields[i].numeric) {
      DS_ASSIGN_OR_RETURN(uint64_t v, read_varint(in, "header coding"));
      put_varint(coding, v);
      raw = (v & 1) != 0;
    }
    if (raw) {
      std::string bytes(kFields[i].length, '\0');
      DS_RETURN_IF_ERROR(read_exact(in, bytes, "header coding"));
      coding += bytes;
    }
  }
  std::string_view view = coding;
  return decode(basis, view);
}

}  // namespace deltasync
