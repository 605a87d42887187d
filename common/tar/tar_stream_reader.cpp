// TarStreamReader: headers and payloads of a tar stream, in order; see the
// header.
#include "common/tar/tar_stream_reader.h"

#include <array>

namespace deltasync {

namespace {
constexpr uint64_t kMaxExtensionBytes = 1 << 20;  // a PAX record set or a long name
}

Result<std::string> TarStreamReader::read_extension(uint64_t size, const std::string& kind) {
  if (size > kMaxExtensionBytes)
    return make_error(ErrorCode::kCorrupt, what_ + ": " + kind + " header of " +
                                               std::to_string(size) + " bytes (too large)");
  std::string data(size, '\0');
  DS_RETURN_IF_ERROR(read_exact(archive_, std::span<char>(data.data(), data.size()), what_));
  DS_RETURN_IF_ERROR(skip_exact(archive_, tar_padding(size), what_));
  return data;
}

Result<std::optional<TarEntry>> TarStreamReader::next() {
  if (payload_) DS_RETURN_IF_ERROR(skip_exact(*payload_, payload_->remaining(), what_));
  DS_RETURN_IF_ERROR(skip_exact(archive_, padding_, what_));
  padding_ = 0;
  std::map<std::string, std::string> pax;
  std::optional<std::string> long_name;
  std::array<char, kTarBlock> block;
  for (;;) {
    DS_ASSIGN_OR_RETURN(size_t got, read_full(archive_, std::span<char>(block)));
    std::string_view view(block.data(), got);
    if (got == 0 || (got == kTarBlock && tar_block_is_zero(view))) return std::nullopt;
    if (got < kTarBlock)
      return make_error(ErrorCode::kCorrupt, what_ + ": truncated (a partial header block)");
    if (!tar_checksum_ok(view))
      return make_error(ErrorCode::kCorrupt, what_ + ": bad header checksum (not a tar archive?)");
    TarEntry entry;
    DS_RETURN_IF_ERROR(with_context(parse_tar_header(view, entry), what_));
    if (entry.type == 'x' || entry.type == 'g' || entry.type == 'L') {
      DS_ASSIGN_OR_RETURN(std::string data, read_extension(entry.size, std::string(1, entry.type)));
      if (entry.type == 'L') {
        long_name = data.substr(0, data.find('\0'));
      } else if (entry.type == 'x') {
        DS_ASSIGN_OR_RETURN(auto records, with_context(parse_pax_records(data), what_));
        for (auto& [k, v] : records) pax[k] = std::move(v);
      }
      continue;
    }
    if (long_name) entry.path = *long_name;
    DS_RETURN_IF_ERROR(with_context(apply_pax_records(pax, entry), what_));
    uint64_t size = tar_type_has_payload(entry.type) ? entry.size : 0;
    payload_.emplace(archive_, size);
    padding_ = tar_padding(size);
    return std::optional<TarEntry>(std::move(entry));
  }
}

}  // namespace deltasync
