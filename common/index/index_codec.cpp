// Format (zstd-compressed, ending in the sha256 of what precedes it): "DSIX" u8(version=1)
// varint(digest_bytes) varint(diff_id bytes = 32) bytes[32] varint(tar_size) varint(entries), then
// per entry varint(raw_len) bytes[raw_len] and, for regular files with a
// payload, digest_bytes of its sha256.
#include "common/index/index_codec.h"

#include <cstring>

#include "common/codec/compression.h"
#include "common/tar/tar_entry.h"
#include "common/tar/tar_split.h"
#include "common/util/varint.h"

namespace deltasync {

namespace {
constexpr std::string_view kMagic = "DSIX";
constexpr uint64_t kMaxEntries = 20'000'000;
constexpr size_t kMaxDecoded = size_t{1} << 30;

bool has_digest(const FileRecord& r) {
  return (r.kind == FileKind::kRegular || r.kind == FileKind::kOther) && r.size > 0;
}
}  // namespace

Digest truncate_digest(const Digest& digest, size_t bytes) {
  if (bytes >= 32) return digest;
  std::array<uint8_t, 32> raw = digest.raw();
  for (size_t i = bytes; i < raw.size(); ++i) raw[i] = 0;
  return Digest::from_raw(raw);
}

Result<std::string> encode_layer_index(const LayerIndex& index, size_t digest_bytes) {
  if (digest_bytes < 8 || digest_bytes > 32)
    return make_error(ErrorCode::kInvalidArgument, "index: digest bytes must be 8..32");
  std::string out(kMagic);
  out.push_back('\x01');
  put_varint(out, digest_bytes);
  put_varint(out, 32);
  out.append(reinterpret_cast<const char*>(index.diff_id.raw().data()), 32);
  put_varint(out, index.tar_size);
  put_varint(out, index.entries.size());
  for (const FileRecord& r : index.entries) {
    put_varint(out, r.raw_metadata.size());
    out += r.raw_metadata;
    if (has_digest(r))
      out.append(reinterpret_cast<const char*>(r.digest.raw().data()), digest_bytes);
  }
  Digest check = Digest::of(out);
  out.append(reinterpret_cast<const char*>(check.raw().data()), 32);
  return zstd_compress(out, 9);
}

Result<LayerIndex> decode_layer_index(std::string_view bytes, std::string_view what) {
  auto corrupt = [&](const std::string& detail) {
    return make_error(ErrorCode::kCorrupt, std::string(what) + ": " + detail);
  };
  DS_ASSIGN_OR_RETURN(std::string plain,
                      with_context(zstd_decompress(bytes, kMaxDecoded), std::string(what)));
  if (plain.size() < 32) return corrupt("too short");
  std::array<uint8_t, 32> check{};
  std::memcpy(check.data(), plain.data() + plain.size() - 32, 32);
  plain.resize(plain.size() - 32);
  if (Digest::of(plain) != Digest::from_raw(check)) return corrupt("checksum mismatch (damaged)");
  MemorySource in(plain);
  std::string magic(5, '\0');
  DS_RETURN_IF_ERROR(read_exact(in, magic, what));
  if (magic.substr(0, 4) != kMagic || magic[4] != '\x01')
    return corrupt("not a deltasync layer index (or an unknown version)");
  DS_ASSIGN_OR_RETURN(uint64_t digest_bytes, read_varint(in, what));
  DS_ASSIGN_OR_RETURN(uint64_t id_bytes, read_varint(in, what));
  if (digest_bytes < 8 || digest_bytes > 32 || id_bytes != 32) return corrupt("bad digest size");
  std::array<uint8_t, 32> raw{};
  DS_RETURN_IF_ERROR(
      read_exact(in, std::span<char>(reinterpret_cast<char*>(raw.data()), 32), what));
  LayerIndex index;
  index.diff_id = Digest::from_raw(raw);
  DS_ASSIGN_OR_RETURN(index.tar_size, read_varint(in, what));
  DS_ASSIGN_OR_RETURN(uint64_t count, read_varint(in, what));
  if (count > kMaxEntries) return corrupt("too many entries");
  index.entries.reserve(static_cast<size_t>(std::min<uint64_t>(count, 1u << 20)));
  uint64_t offset = 0;
  for (uint64_t i = 0; i < count; ++i) {
    DS_ASSIGN_OR_RETURN(uint64_t raw_len, read_varint(in, what));
    if (raw_len < kTarBlock || raw_len % kTarBlock != 0 || raw_len > (64u << 20))
      return corrupt("entry " + std::to_string(i) + ": bad header length");
    std::string header(raw_len, '\0');
    DS_RETURN_IF_ERROR(read_exact(in, header, what));
    MemorySource header_source(header);
    TarEntryReader reader(header_source, std::string(what), header.size());
    DS_ASSIGN_OR_RETURN(auto entry, reader.next());
    if (!entry || entry->raw_metadata != header)
      return corrupt("entry " + std::to_string(i) + ": header does not parse as one tar entry");
    entry->offset = offset;
    FileRecord r = file_record_from_entry(*entry, i);
    if (has_digest(r)) {
      std::array<uint8_t, 32> d{};
      DS_RETURN_IF_ERROR(
          read_exact(in, std::span<char>(reinterpret_cast<char*>(d.data()), digest_bytes), what));
      r.digest = Digest::from_raw(d);
    } else if (r.kind == FileKind::kRegular || r.kind == FileKind::kOther) {
      r.digest = truncate_digest(Digest::of(""), digest_bytes);
    }
    // Sizes reach 2^64 - 1 (base-256): compare without overflowing.
    if (r.size > index.tar_size || r.payload_offset > index.tar_size - r.size ||
        tar_padding(r.size) > index.tar_size - r.payload_offset - r.size)
      return corrupt("entries run past the layer's size");
    offset = r.payload_offset + r.size + tar_padding(r.size);
    index.entries.push_back(std::move(r));
  }
  char probe;
  DS_ASSIGN_OR_RETURN(size_t extra, in.read(std::span<char>(&probe, 1)));
  if (extra != 0) return corrupt("data after the last entry");
  return index;
}

}  // namespace deltasync
