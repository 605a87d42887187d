#include "common/tar/tar_metadata.h"

#include <algorithm>

#include "common/util/varint.h"

namespace deltasync {

TarMetadataWriter::TarMetadataWriter(ByteSink& metadata, ByteSink* payloads)
    : metadata_(metadata), payloads_(payloads) {}

Status TarMetadataWriter::on_entry(const TarEntry& entry) {
  DS_RETURN_IF_ERROR(flush_zero_run());
  record_.clear();
  record_.push_back('E');
  put_varint(record_, entry.raw_metadata.size());
  record_ += entry.raw_metadata;
  put_varint(record_, entry.size);
  ++entries_;
  // Written before the payload so that a reader streaming both at once can
  // proceed (the padding part follows in on_entry_end).
  return metadata_.write(record_);
}

Status TarMetadataWriter::on_payload(std::string_view chunk) {
  return payloads_ ? payloads_->write(chunk) : ok_status();
}

Status TarMetadataWriter::on_entry_end(std::string_view padding) {
  record_.clear();
  put_varint(record_, padding.size());
  bool zero = std::all_of(padding.begin(), padding.end(), [](char c) { return c == 0; });
  record_.push_back(zero ? 0 : 1);
  if (!zero) record_.append(padding);
  return metadata_.write(record_);
}

Status TarMetadataWriter::flush_zero_run() {
  if (pending_zeros_ == 0) return ok_status();
  std::string rec(1, 'Z');
  put_varint(rec, pending_zeros_);
  pending_zeros_ = 0;
  return metadata_.write(rec);
}

Status TarMetadataWriter::on_trailer(std::string_view bytes) {
  while (!bytes.empty()) {
    size_t zeros = 0;
    while (zeros < bytes.size() && bytes[zeros] == 0) ++zeros;
    pending_zeros_ += zeros;
    bytes.remove_prefix(zeros);
    if (bytes.empty()) break;
    size_t other = 0;
    while (other < bytes.size() && bytes[other] != 0) ++other;
    DS_RETURN_IF_ERROR(flush_zero_run());
    std::string rec(1, 'T');
    put_varint(rec, other);
    rec.append(bytes.substr(0, other));
    DS_RETURN_IF_ERROR(metadata_.write(rec));
    bytes.remove_prefix(other);
  }
  return ok_status();
}

Status TarMetadataWriter::finish() {
  DS_RETURN_IF_ERROR(flush_zero_run());
  return metadata_.write(".");
}

Status StreamPayloadProvider::write_payload(const TarMetadataRecord& record, ByteSink& out) {
  return copy_exact(payloads_, out, record.payload_size, "payload stream");
}

namespace {

Status write_zeros(ByteSink& out, uint64_t count) {
  static const std::string kZeros(64 * 1024, '\0');
  while (count > 0) {
    size_t n = std::min<uint64_t>(count, kZeros.size());
    DS_RETURN_IF_ERROR(out.write(std::string_view(kZeros.data(), n)));
    count -= n;
  }
  return ok_status();
}

}  // namespace

Status reassemble_tar(ByteSource& raw_metadata, PayloadProvider& payloads, ByteSink& out,
                      const ReassembleLimits& limits) {
  BufferedSource metadata(raw_metadata);
  TarMetadataRecord record;
  for (size_t index = 0;;) {
    char kind;
    DS_RETURN_IF_ERROR(read_exact(metadata, std::span<char>(&kind, 1), "tar metadata stream"));
    switch (kind) {
      case 'E': {
        DS_ASSIGN_OR_RETURN(uint64_t meta_len, read_varint(metadata, "tar metadata stream"));
        if (meta_len > limits.max_metadata_record || meta_len < kTarBlock) {
          return make_error(ErrorCode::kCorrupt,
                            "tar metadata stream: entry " + std::to_string(index) +
                                " has an implausible header size " + std::to_string(meta_len));
        }
        record.index = index;
        record.raw_metadata.resize(meta_len);
        DS_RETURN_IF_ERROR(read_exact(metadata, record.raw_metadata, "tar metadata stream"));
        DS_ASSIGN_OR_RETURN(record.payload_size, read_varint(metadata, "tar metadata stream"));
        DS_RETURN_IF_ERROR(out.write(record.raw_metadata));
        DS_RETURN_IF_ERROR(
            with_context(payloads.write_payload(record, out), "entry " + std::to_string(index)));
        DS_ASSIGN_OR_RETURN(uint64_t pad_len, read_varint(metadata, "tar metadata stream"));
        if (pad_len >= kTarBlock) {
          return make_error(ErrorCode::kCorrupt,
                            "tar metadata stream: padding longer than a block");
        }
        char pad_kind;
        DS_RETURN_IF_ERROR(
            read_exact(metadata, std::span<char>(&pad_kind, 1), "tar metadata stream"));
        if (pad_kind == 0) {
          DS_RETURN_IF_ERROR(write_zeros(out, pad_len));
        } else {
          std::string pad(pad_len, '\0');
          DS_RETURN_IF_ERROR(read_exact(metadata, pad, "tar metadata stream"));
          DS_RETURN_IF_ERROR(out.write(pad));
        }
        ++index;
        break;
      }
      case 'Z': {
        DS_ASSIGN_OR_RETURN(uint64_t count, read_varint(metadata, "tar metadata stream"));
        if (count > limits.max_zero_run) {
          return make_error(ErrorCode::kCorrupt, "tar metadata stream: trailer of " +
                                                     std::to_string(count) +
                                                     " zero bytes exceeds the limit");
        }
        DS_RETURN_IF_ERROR(write_zeros(out, count));
        break;
      }
      case 'T': {
        DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(metadata, "tar metadata stream"));
        DS_RETURN_IF_ERROR(copy_exact(metadata, out, len, "tar metadata stream trailer"));
        break;
      }
      case '.':
        return ok_status();
      default:
        return make_error(ErrorCode::kCorrupt, "tar metadata stream: unknown record type " +
                                                   std::to_string(static_cast<uint8_t>(kind)));
    }
  }
}

}  // namespace deltasync
