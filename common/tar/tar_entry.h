// Tar headers: parsing the formats real layers use, and writing simple ones.
//
// An archive is a sequence of 512-byte blocks. Each entry is a header block,
// optionally preceded by extension entries that override its fields (POSIX
// PAX 'x'/'g' records, GNU 'L'/'K' long names), then the payload rounded up
// to a whole block. We parse ustar, GNU and PAX (including base-256 numbers
// and sub-second times) into TarEntry, keeping every byte of the raw
// metadata so that an archive can be rebuilt exactly from it.
//
// Which types carry a payload follows Go's archive/tar (which Docker uses):
// links, devices, directories and FIFOs never do, whatever their size field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/util/result.h"

namespace deltasync {

constexpr size_t kTarBlock = 512;

struct TarEntry {
  // Effective values, after PAX / GNU extensions are applied.
  std::string path;         // as stored (may start with "./"; see normalized_path())
  std::string link_target;  // symlink target or hard-link name
  char type = '0';          // main header typeflag ('\0' is reported as '0')
  uint64_t size = 0;        // payload bytes following the header in the archive
  uint32_t mode = 0;
  uint64_t uid = 0;
  uint64_t gid = 0;
  int64_t mtime = 0;       // whole seconds
  std::string mtime_text;  // PAX "mtime" as written (sub-second), empty if none
  std::string uname;
  std::string gname;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::map<std::string, std::string> xattrs;  // PAX SCHILY.xattr.*

  // Every byte of this entry's metadata in the archive: extension headers with
  // their data and padding, then the main header block.
  std::string raw_metadata;
  uint64_t offset = 0;  // archive offset of the first byte of raw_metadata

  bool is_regular() const { return type == '0' || type == '7'; }
  bool is_dir() const { return type == '5'; }
  bool is_symlink() const { return type == '2'; }
  bool is_hardlink() const { return type == '1'; }
  // "./a/b/" -> "a/b"; "/" and "." -> "".
  std::string normalized_path() const;
  // ".wh.NAME" deletes NAME; ".wh..wh..opq" makes the directory opaque.
  bool is_whiteout() const;
  bool is_opaque_whiteout() const;
};

std::string normalize_tar_path(std::string_view path);
uint64_t tar_padding(uint64_t size);

// Does a typeflag carry payload bytes? (false for links, devices, dirs, fifos)
bool tar_type_has_payload(char type);

// Parses a 512-byte header's numeric field (octal or base-256).
Result<uint64_t> parse_tar_number(std::string_view field, std::string_view field_name);
// Checks a header block's checksum (unsigned or historic signed sum).
bool tar_checksum_ok(std::string_view block);
bool tar_block_is_zero(std::string_view block);

// Fills `entry` from one main header block. `entry.raw_metadata` is not touched.
Status parse_tar_header(std::string_view block, TarEntry& entry);
// Overrides fields with PAX records (path, linkpath, size, uid, gid, mtime,
// uname, gname, SCHILY.xattr.*).
Status apply_pax_records(const std::map<std::string, std::string>& records, TarEntry& entry);

// Parses PAX records ("len key=value\n"...) into key/value pairs.
Result<std::map<std::string, std::string>> parse_pax_records(std::string_view data);

// Builds one regular-file / directory / symlink header, with a PAX header
// first when the path, link or size do not fit ustar. Used to write
// archives (docker-archive output, tests, benchmarks), never to rebuild one.
struct TarHeaderSpec {
  std::string path;
  char type = '0';
  uint64_t size = 0;
  uint32_t mode = 0644;
  uint64_t uid = 0;
  uint64_t gid = 0;
  int64_t mtime = 0;
  std::string link_target;
  std::map<std::string, std::string> pax;  // extra PAX records (e.g. SCHILY.xattr.*)
};
std::string build_tar_header(const TarHeaderSpec& spec);

}  // namespace deltasync
