// The tar walk shared by split_tar() and TarEntryReader: read one header
// block; if it is an extension entry ('x', 'L', 'K'), read its data into the
// pending raw metadata and keep going; a zero block starts the end of the
// archive. An old-GNU sparse entry ('S') whose header says "isextended" is
// followed by sparse-map blocks (21 entries and their own isextended byte,
// no checksum): they are metadata too, kept after the main header. Extension
// data is capped so a hostile size cannot make us allocate without bound.
#include "common/tar/tar_split.h"

#include <vector>

namespace deltasync {

namespace {

struct HeaderRead {
  enum Kind { kEntry, kEndMarker, kCleanEof } kind;
  TarEntry entry;
  std::string end_block;  // the first zero block, for kEndMarker
};

std::string entry_context(std::string_view archive, size_t index, uint64_t offset) {
  return std::string(archive) + ": tar entry " + std::to_string(index) + " at offset " +
         std::to_string(offset);
}

Result<HeaderRead> read_next_header(ByteSource& in, uint64_t& offset, std::string_view archive,
                                    size_t index, const TarSplitLimits& limits) {
  HeaderRead result{HeaderRead::kEntry, {}, {}};
  TarEntry& entry = result.entry;
  entry.offset = offset;
  std::map<std::string, std::string> pax;
  std::string gnu_long_name, gnu_long_link;
  bool have_long_name = false, have_long_link = false;
  std::string block(kTarBlock, '\0');

  while (true) {
    DS_ASSIGN_OR_RETURN(size_t got, read_full(in, block));
    if (got == 0 && entry.raw_metadata.empty()) {
      result.kind = HeaderRead::kCleanEof;
      return result;
    }
    if (got != kTarBlock) {
      return make_error(ErrorCode::kCorrupt, entry_context(archive, index, offset) +
                                                 ": archive is truncated inside a header block");
    }
    if (tar_block_is_zero(block)) {
      if (!entry.raw_metadata.empty()) {
        return make_error(ErrorCode::kCorrupt,
                          entry_context(archive, index, entry.offset) +
                              ": extension header is not followed by an entry");
      }
      result.kind = HeaderRead::kEndMarker;
      result.end_block = std::move(block);
      offset += kTarBlock;
      return result;
    }
    if (!tar_checksum_ok(block)) {
      return make_error(ErrorCode::kCorrupt,
                        entry_context(archive, index, offset) +
                            ": bad header checksum (the archive is corrupt or not a tar file)");
    }
    offset += kTarBlock;
    entry.raw_metadata += block;
    char type = block[156];
    // 'g': a PAX global header. Its bytes stay with the next entry's
    // metadata (reproduced exactly); its records are not applied: what
    // readers do with them varies, and none changes an entry's extent.
    if (type != 'x' && type != 'g' && type != 'L' && type != 'K') break;

    DS_ASSIGN_OR_RETURN(
        uint64_t ext_size,
        with_context(parse_tar_number(std::string_view(block).substr(124, 12), "size"),
                     entry_context(archive, index, offset)));
    if (ext_size > limits.max_extension_bytes) {
      return make_error(ErrorCode::kCorrupt,
                        entry_context(archive, index, offset) + ": extension header of " +
                            std::to_string(ext_size) + " bytes exceeds the limit");
    }
    std::string data(ext_size + tar_padding(ext_size), '\0');
    DS_RETURN_IF_ERROR(with_context(read_exact(in, data, "extension header data"),
                                    entry_context(archive, index, offset)));
    offset += data.size();
    entry.raw_metadata += data;
    std::string_view content(data.data(), ext_size);
    if (type == 'x') {
      DS_ASSIGN_OR_RETURN(auto records, with_context(parse_pax_records(content),
                                                     entry_context(archive, index, offset)));
      for (auto& [k, v] : records) pax[k] = std::move(v);
    } else if (type == 'g') {
      // kept as bytes only (see above)
    } else {
      std::string& target = type == 'L' ? gnu_long_name : gnu_long_link;
      target.assign(content.substr(0, content.find('\0')));
      (type == 'L' ? have_long_name : have_long_link) = true;
    }
  }

  std::string_view header(entry.raw_metadata.data() + entry.raw_metadata.size() - kTarBlock,
                          kTarBlock);
  DS_RETURN_IF_ERROR(
      with_context(parse_tar_header(header, entry), entry_context(archive, index, entry.offset)));
  // Old GNU sparse: the header's isextended byte (offset 482) announces
  // sparse-map blocks, each with its own isextended byte at 504. The
  // payload that follows is the packed data (the header's size field).
  if (header[156] == 'S' && header[482] != 0) {
    for (size_t blocks = 0;; ++blocks) {
      if ((blocks + 1) * kTarBlock > limits.max_extension_bytes)
        return make_error(ErrorCode::kCorrupt, entry_context(archive, index, entry.offset) +
                                                   ": sparse map of '" + entry.path +
                                                   "' exceeds the limit");
      DS_RETURN_IF_ERROR(with_context(read_exact(in, block, "sparse map block"),
                                      entry_context(archive, index, entry.offset) +
                                          ": old-GNU sparse entry '" + entry.path + "'"));
      offset += kTarBlock;
      entry.raw_metadata += block;
      if (block[504] == 0) break;
    }
  }
  if (have_long_name) entry.path = gnu_long_name;
  if (have_long_link) entry.link_target = gnu_long_link;
  DS_RETURN_IF_ERROR(
      with_context(apply_pax_records(pax, entry), entry_context(archive, index, entry.offset)));
  if (!tar_type_has_payload(entry.type)) entry.size = 0;
  return result;
}

}  // namespace

Status split_tar(ByteSource& raw_input, TarVisitor& visitor, std::string_view archive_name,
                 const TarSplitLimits& limits) {
  BufferedSource input(raw_input);
  uint64_t offset = 0;
  std::vector<char> buffer(kIoChunk);
  for (size_t index = 0;; ++index) {
    DS_ASSIGN_OR_RETURN(HeaderRead header,
                        read_next_header(input, offset, archive_name, index, limits));
    if (header.kind == HeaderRead::kCleanEof) return ok_status();
    if (header.kind == HeaderRead::kEndMarker) {
      DS_RETURN_IF_ERROR(visitor.on_trailer(header.end_block));
      while (true) {
        DS_ASSIGN_OR_RETURN(size_t got, input.read(buffer));
        if (got == 0) return ok_status();
        DS_RETURN_IF_ERROR(visitor.on_trailer(std::string_view(buffer.data(), got)));
      }
    }
    const TarEntry& entry = header.entry;
    DS_RETURN_IF_ERROR(visitor.on_entry(entry));
    uint64_t remaining = entry.size;
    while (remaining > 0) {
      size_t want = std::min<uint64_t>(remaining, buffer.size());
      DS_ASSIGN_OR_RETURN(size_t got, input.read(std::span<char>(buffer.data(), want)));
      if (got == 0) {
        return make_error(ErrorCode::kCorrupt,
                          std::string(archive_name) + ": archive is truncated in the content of '" +
                              entry.path + "' (" + std::to_string(remaining) + " of " +
                              std::to_string(entry.size) + " bytes missing)");
      }
      DS_RETURN_IF_ERROR(visitor.on_payload(std::string_view(buffer.data(), got)));
      remaining -= got;
    }
    offset += entry.size;
    std::string padding(tar_padding(entry.size), '\0');
    DS_ASSIGN_OR_RETURN(size_t got, read_full(input, padding));
    if (got != padding.size()) {
      return make_error(ErrorCode::kCorrupt, std::string(archive_name) +
                                                 ": archive is truncated in the padding after '" +
                                                 entry.path + "'");
    }
    offset += padding.size();
    DS_RETURN_IF_ERROR(visitor.on_entry_end(padding));
  }
}

TarEntryReader::TarEntryReader(ByteSource& input, std::string archive_name, size_t buffer_bytes)
    : input_(input, std::max<size_t>(buffer_bytes, kTarBlock)), name_(std::move(archive_name)) {}

Result<std::optional<TarEntry>> TarEntryReader::next() {
  if (done_) return std::optional<TarEntry>();
  DS_RETURN_IF_ERROR(
      skip_exact(input_, payload_remaining_ + padding_remaining_, name_ + ": entry content"));
  offset_ += payload_remaining_ + padding_remaining_;
  payload_remaining_ = padding_remaining_ = 0;
  DS_ASSIGN_OR_RETURN(HeaderRead header,
                      read_next_header(input_, offset_, name_, index_++, TarSplitLimits{}));
  if (header.kind != HeaderRead::kEntry) {
    done_ = true;
    return std::optional<TarEntry>();
  }
  payload_remaining_ = header.entry.size;
  padding_remaining_ = tar_padding(header.entry.size);
  return std::optional<TarEntry>(std::move(header.entry));
}

Result<size_t> TarEntryReader::PayloadSource::read(std::span<char> buffer) {
  if (owner_.payload_remaining_ == 0) return size_t{0};
  size_t want = std::min<uint64_t>(buffer.size(), owner_.payload_remaining_);
  DS_ASSIGN_OR_RETURN(size_t got, owner_.input_.read(buffer.first(want)));
  if (got == 0)
    return make_error(ErrorCode::kCorrupt,
                      owner_.name_ + ": archive is truncated in an entry's content");
  owner_.payload_remaining_ -= got;
  owner_.offset_ += got;
  return got;
}

}  // namespace deltasync
