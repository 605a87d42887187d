#include "common/tar/tar_entry.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace deltasync {

namespace {

// ustar field offsets and lengths.
struct Field {
  size_t offset;
  size_t length;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChksum{148, 8}, kTypeflag{156, 1}, kLinkname{157, 100}, kMagic{257, 6},
    kVersion{263, 2}, kUname{265, 32}, kGname{297, 32}, kDevmajor{329, 8}, kDevminor{337, 8},
    kPrefix{345, 155};

std::string_view field(std::string_view block, Field f) {
  return block.substr(f.offset, f.length);
}

std::string c_string(std::string_view f) {
  size_t end = f.find('\0');
  return std::string(f.substr(0, end));
}

}  // namespace

uint64_t tar_padding(uint64_t size) {
  return (kTarBlock - size % kTarBlock) % kTarBlock;
}

bool tar_type_has_payload(char type) {
  switch (type) {
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
      return false;
    default:
      return true;
  }
}

std::string normalize_tar_path(std::string_view path) {
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(i, slash - i);
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out.append(part);
    }
    i = slash + 1;
  }
  return out;
}

std::string TarEntry::normalized_path() const {
  return normalize_tar_path(path);
}

bool TarEntry::is_whiteout() const {
  std::string p = normalized_path();
  size_t slash = p.rfind('/');
  std::string_view base = std::string_view(p).substr(slash == std::string::npos ? 0 : slash + 1);
  return base.starts_with(".wh.");
}

bool TarEntry::is_opaque_whiteout() const {
  std::string p = normalized_path();
  return p == ".wh..wh..opq" || p.ends_with("/.wh..wh..opq");
}

Result<uint64_t> parse_tar_number(std::string_view f, std::string_view field_name) {
  if (f.empty()) return uint64_t{0};
  auto first = static_cast<uint8_t>(f[0]);
  if (first & 0x80) {
    // Base-256: big-endian two's complement; we accept non-negative values.
    if (first & 0x40) {
      return make_error(ErrorCode::kUnsupported,
                        "tar: negative base-256 " + std::string(field_name));
    }
    uint64_t value = first & 0x3f;
    for (size_t i = 1; i < f.size(); ++i) {
      if (value >> 56) {
        return make_error(ErrorCode::kCorrupt,
                          "tar: base-256 " + std::string(field_name) + " overflows 64 bits");
      }
      value = (value << 8) | static_cast<uint8_t>(f[i]);
    }
    return value;
  }
  uint64_t value = 0;
  size_t i = 0;
  while (i < f.size() && (f[i] == ' ' || f[i] == '\0')) ++i;
  if (i == f.size()) return uint64_t{0};
  for (; i < f.size(); ++i) {
    char c = f[i];
    if (c == ' ' || c == '\0') break;
    if (c < '0' || c > '7') {
      return make_error(ErrorCode::kCorrupt,
                        "tar: " + std::string(field_name) + " field is not octal");
    }
    if (value >> 61)
      return make_error(ErrorCode::kCorrupt, "tar: " + std::string(field_name) + " overflows");
    value = value * 8 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

bool tar_block_is_zero(std::string_view block) {
  return std::all_of(block.begin(), block.end(), [](char c) { return c == 0; });
}

bool tar_checksum_ok(std::string_view block) {
  auto stored = parse_tar_number(field(block, kChksum), "checksum");
  if (!stored) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) {
    bool in_checksum = i >= kChksum.offset && i < kChksum.offset + kChksum.length;
    auto byte = in_checksum ? static_cast<uint8_t>(' ') : static_cast<uint8_t>(block[i]);
    unsigned_sum += byte;
    signed_sum += in_checksum ? ' ' : static_cast<int8_t>(block[i]);
  }
  return *stored == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum;
}

Status parse_tar_header(std::string_view block, TarEntry& entry) {
  char type = block[kTypeflag.offset];
  entry.type = type == '\0' ? '0' : type;
  std::string_view magic = field(block, kMagic);
  bool posix = magic == std::string_view("ustar\0", 6);
  std::string name = c_string(field(block, kName));
  std::string prefix = posix ? c_string(field(block, kPrefix)) : std::string();
  entry.path = prefix.empty() ? name : prefix + "/" + name;
  entry.link_target = c_string(field(block, kLinkname));
  DS_ASSIGN_OR_RETURN(uint64_t mode, parse_tar_number(field(block, kMode), "mode"));
  entry.mode = static_cast<uint32_t>(mode & 07777777);
  DS_ASSIGN_OR_RETURN(entry.uid, parse_tar_number(field(block, kUid), "uid"));
  DS_ASSIGN_OR_RETURN(entry.gid, parse_tar_number(field(block, kGid), "gid"));
  DS_ASSIGN_OR_RETURN(uint64_t mtime, parse_tar_number(field(block, kMtime), "mtime"));
  entry.mtime = static_cast<int64_t>(mtime);
  DS_ASSIGN_OR_RETURN(entry.size, parse_tar_number(field(block, kSize), "size"));
  entry.uname = c_string(field(block, kUname));
  entry.gname = c_string(field(block, kGname));
  if (type == '3' || type == '4') {
    DS_ASSIGN_OR_RETURN(uint64_t major, parse_tar_number(field(block, kDevmajor), "devmajor"));
    DS_ASSIGN_OR_RETURN(uint64_t minor, parse_tar_number(field(block, kDevminor), "devminor"));
    entry.dev_major = static_cast<uint32_t>(major);
    entry.dev_minor = static_cast<uint32_t>(minor);
  }
  (void)kVersion;
  return ok_status();
}

namespace {
Result<uint64_t> pax_number(const std::string& value, std::string_view key) {
  if (value.empty() || value.size() > 20 ||
      value.find_first_not_of("0123456789") != std::string::npos) {
    return make_error(ErrorCode::kCorrupt,
                      "tar: PAX " + std::string(key) + " '" + value + "' is not a number");
  }
  // 20 digits may exceed 64 bits (std::stoull would throw).
  uint64_t number = 0;
  if (std::from_chars(value.data(), value.data() + value.size(), number).ec != std::errc()) {
    return make_error(ErrorCode::kCorrupt,
                      "tar: PAX " + std::string(key) + " '" + value + "' does not fit 64 bits");
  }
  return number;
}
}  // namespace

Status apply_pax_records(const std::map<std::string, std::string>& records, TarEntry& entry) {
  for (const auto& [key, raw_value] : records) {
    // POSIX: an empty value removes the record, so the header's field stands.
    // Go and GNU tar also take surrounding blanks and a leading '+'.
    if (raw_value.empty()) continue;
    std::string value = raw_value;
    if (key == "size" || key == "uid" || key == "gid" || key == "mtime") {
      size_t first = value.find_first_not_of(" \t");
      size_t last = value.find_last_not_of(" \t");
      value = first == std::string::npos ? "" : value.substr(first, last - first + 1);
      if (!value.empty() && value[0] == '+') value.erase(0, 1);
      if (value.empty()) continue;
    }
    if (key == "path") {
      entry.path = value;
    } else if (key == "linkpath") {
      entry.link_target = value;
    } else if (key == "size") {
      DS_ASSIGN_OR_RETURN(entry.size, pax_number(value, key));
    } else if (key == "uid" || key == "gid") {
      // Only reported, never needed to rebuild the bytes: a value we cannot
      // hold (negative, as Go's reader allows) leaves the header's field.
      if (auto id = pax_number(value, key)) (key == "uid" ? entry.uid : entry.gid) = *id;
    } else if (key == "mtime") {
      entry.mtime_text = value;
      std::string whole = value.substr(0, value.find('.'));
      bool negative = !whole.empty() && whole[0] == '-';
      DS_ASSIGN_OR_RETURN(uint64_t seconds, pax_number(negative ? whole.substr(1) : whole, key));
      if (seconds > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return make_error(ErrorCode::kCorrupt, "tar: PAX mtime '" + value + "' is out of range");
      entry.mtime = negative ? -static_cast<int64_t>(seconds) : static_cast<int64_t>(seconds);
    } else if (key == "uname") {
      entry.uname = value;
    } else if (key == "gname") {
      entry.gname = value;
    } else if (key.starts_with("SCHILY.xattr.")) {
      entry.xattrs[key.substr(13)] = value;
    }
  }
  return ok_status();
}

Result<std::map<std::string, std::string>> parse_pax_records(std::string_view data) {
  std::map<std::string, std::string> out;
  while (!data.empty()) {
    if (data.find_first_not_of('\0') == std::string_view::npos) break;  // NUL padding
    size_t space = data.find(' ');
    if (space == std::string_view::npos || space == 0 || space > 20) {
      return make_error(ErrorCode::kCorrupt, "tar: malformed PAX record length");
    }
    uint64_t len = 0;
    for (size_t i = 0; i < space; ++i) {
      if (data[i] < '0' || data[i] > '9')
        return make_error(ErrorCode::kCorrupt, "tar: malformed PAX record length");
      len = len * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (len <= space + 1 || len > data.size() || data[len - 1] != '\n') {
      return make_error(ErrorCode::kCorrupt, "tar: PAX record length does not match its content");
    }
    std::string_view record = data.substr(space + 1, len - space - 2);
    size_t eq = record.find('=');
    if (eq == std::string_view::npos)
      return make_error(ErrorCode::kCorrupt, "tar: PAX record without '='");
    out[std::string(record.substr(0, eq))] = std::string(record.substr(eq + 1));
    data.remove_prefix(len);
  }
  return out;
}

namespace {

void put_octal(std::string& block, Field f, uint64_t value) {
  // length-1 octal digits then NUL, as GNU tar writes.
  std::string digits(f.length - 1, '0');
  for (size_t i = digits.size(); i-- > 0 && value;) {
    digits[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  std::memcpy(block.data() + f.offset, digits.data(), digits.size());
  block[f.offset + f.length - 1] = '\0';
}

bool fits_octal(Field f, uint64_t value) {
  return value < (uint64_t{1} << (3 * (f.length - 1)));
}

void put_string(std::string& block, Field f, std::string_view s) {
  std::memcpy(block.data() + f.offset, s.data(), std::min(s.size(), f.length));
}

std::string header_block(std::string_view name, char type, uint64_t size, uint32_t mode,
                         uint64_t uid, uint64_t gid, int64_t mtime, std::string_view link) {
  std::string block(kTarBlock, '\0');
  put_string(block, kName, name);
  put_octal(block, kMode, mode);
  put_octal(block, kUid, fits_octal(kUid, uid) ? uid : 0);
  put_octal(block, kGid, fits_octal(kGid, gid) ? gid : 0);
  put_octal(block, kSize, fits_octal(kSize, size) ? size : 0);
  put_octal(block, kMtime,
            mtime > 0 && fits_octal(kMtime, static_cast<uint64_t>(mtime)) ? mtime : 0);
  block[kTypeflag.offset] = type;
  put_string(block, kLinkname, link);
  std::memcpy(block.data() + kMagic.offset, "ustar\0", 6);
  std::memcpy(block.data() + kVersion.offset, "00", 2);
  std::memset(block.data() + kChksum.offset, ' ', kChksum.length);
  uint64_t sum = 0;
  for (char c : block) sum += static_cast<uint8_t>(c);
  std::string digits(6, '0');
  for (size_t i = 6; i-- > 0;) {
    digits[i] = static_cast<char>('0' + (sum & 7));
    sum >>= 3;
  }
  std::memcpy(block.data() + kChksum.offset, digits.data(), 6);
  block[kChksum.offset + 6] = '\0';
  block[kChksum.offset + 7] = ' ';
  return block;
}

std::string pax_record(std::string_view key, std::string_view value) {
  size_t base = key.size() + value.size() + 3;  // ' ' '=' '\n'
  size_t len = base + 1;
  while (std::to_string(len).size() + base != len) ++len;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

}  // namespace

std::string build_tar_header(const TarHeaderSpec& spec) {
  std::map<std::string, std::string> pax = spec.pax;
  if (spec.path.size() >= kName.length) pax["path"] = spec.path;
  if (spec.link_target.size() >= kLinkname.length) pax["linkpath"] = spec.link_target;
  if (!fits_octal(kSize, spec.size)) pax["size"] = std::to_string(spec.size);
  if (!fits_octal(kUid, spec.uid)) pax["uid"] = std::to_string(spec.uid);
  if (!fits_octal(kGid, spec.gid)) pax["gid"] = std::to_string(spec.gid);
  std::string out;
  if (!pax.empty()) {
    std::string records;
    for (const auto& [k, v] : pax) records += pax_record(k, v);
    out += header_block("PaxHeader", 'x', records.size(), 0644, 0, 0, spec.mtime, "");
    out += records;
    out.append(tar_padding(records.size()), '\0');
  }
  out +=
      header_block(spec.path.substr(0, kName.length - 1), spec.type, spec.size, spec.mode, spec.uid,
                   spec.gid, spec.mtime, spec.link_target.substr(0, kLinkname.length - 1));
  return out;
}

}  // namespace deltasync
