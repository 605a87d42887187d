// The layer-stream decoder: the inverse of layer_encoder.cpp. It reads the
// zstd-compressed records one at a time and writes the rebuilt layer tar
// sequentially, hashing it as it goes. Every reference is checked before
// use: basis entry and content numbers must exist, earlier entries must be
// earlier, deltas may not write more than the header's size nor read outside
// their basis file, and the total is bounded; anything else is kCorrupt
// naming the entry.
#include <unistd.h>

#include <cstring>

#include "common/codec/compression.h"
#include "common/delta/block_delta.h"
#include "common/layerstream/header_codec.h"
#include "common/layerstream/layer_stream.h"
#include "common/tar/tar_split.h"
#include "common/util/varint.h"

namespace deltasync {

namespace {

// Bounds of a delta group the decoder holds in memory (the encoder's groups
// are 4 MiB of new bytes and 16 MiB of basis).
constexpr uint64_t kMaxGroupBytes = 16u << 20;
constexpr uint64_t kMaxGroupPrefix = 64u << 20;

Result<char> read_byte(ByteSource& in) {
  char c;
  DS_RETURN_IF_ERROR(read_exact(in, std::span<char>(&c, 1), "layer stream"));
  return c;
}

// Payload size of a rebuilt header (parsed with the same code as the splitter).
Result<uint64_t> payload_size_of(const std::string& raw_metadata) {
  MemorySource source(raw_metadata);
  TarEntryReader reader(source, "rebuilt header", raw_metadata.size());
  DS_ASSIGN_OR_RETURN(auto entry, reader.next());
  if (!entry) return make_error(ErrorCode::kCorrupt, "layer stream: rebuilt header is empty");
  return entry->size;
}

}  // namespace

RebuiltLayerWriter::RebuiltLayerWriter(int fd, uint64_t limit)
    : fd_(fd), limit_(limit), buffer_(1 << 20, '\0') {}

Result<std::unique_ptr<RebuiltLayerWriter>> RebuiltLayerWriter::open(int fd, uint64_t resume_bytes,
                                                                     uint64_t limit) {
  std::unique_ptr<RebuiltLayerWriter> writer(new RebuiltLayerWriter(fd, limit));
  if (::ftruncate(fd, static_cast<off_t>(resume_bytes)) != 0)
    return std::unexpected(errno_error(errno, "truncate partial layer"));
  if (resume_bytes > 0) {
    FileSource existing(fd, 0, resume_bytes, "partial layer");
    std::vector<char> buffer(kIoChunk);
    uint64_t remaining = resume_bytes;
    while (remaining > 0) {
      size_t want = std::min<uint64_t>(remaining, buffer.size());
      DS_RETURN_IF_ERROR(
          read_exact(existing, std::span<char>(buffer.data(), want), "partial layer"));
      writer->hasher_.update(std::string_view(buffer.data(), want));
      remaining -= want;
    }
  }
  if (::lseek(fd, static_cast<off_t>(resume_bytes), SEEK_SET) < 0)
    return std::unexpected(errno_error(errno, "seek partial layer"));
  writer->offset_ = resume_bytes;
  return writer;
}

Status RebuiltLayerWriter::write(std::string_view data) {
  if (offset_ + data.size() > limit_) {
    return make_error(ErrorCode::kCorrupt, "layer stream: rebuilt layer exceeds the size limit");
  }
  hasher_.update(data);
  offset_ += data.size();
  if (used_ + data.size() > buffer_.size()) DS_RETURN_IF_ERROR(flush());
  if (data.size() >= buffer_.size()) return write_fd(data);
  std::memcpy(buffer_.data() + used_, data.data(), data.size());
  used_ += data.size();
  return ok_status();
}

Status RebuiltLayerWriter::flush() {
  Status s = write_fd(std::string_view(buffer_.data(), used_));
  used_ = 0;
  return s;
}

Status RebuiltLayerWriter::sync() {
  DS_RETURN_IF_ERROR(flush());
  if (::fdatasync(fd_) != 0) return std::unexpected(errno_error(errno, "fdatasync rebuilt layer"));
  return ok_status();
}

Status RebuiltLayerWriter::write_fd(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error(errno, "write rebuilt layer"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok_status();
}

struct LayerStreamDecoder::Impl {
  const Basis& basis;
  const LayerFiles& basis_files;
  DecoderLimits limits;
  std::vector<EarlierEntry> earlier;  // by global entry number (size 0 when no payload)
};

LayerStreamDecoder::LayerStreamDecoder(const Basis& basis, const LayerFiles& basis_files,
                                       DecoderLimits limits)
    : impl_(std::make_unique<Impl>(Impl{basis, basis_files, limits, {}})) {}
LayerStreamDecoder::~LayerStreamDecoder() = default;

void LayerStreamDecoder::register_entries(const LayerIndex& index, int fd, uint64_t begin,
                                          uint64_t end) {
  end = std::min<uint64_t>(end, index.entries.size());
  for (uint64_t i = begin; i < end; ++i) {
    const FileRecord& r = index.entries[i];
    impl_->earlier.push_back(EarlierEntry{fd, r.payload_offset, r.size});
  }
}

Result<LayerStreamDecoder::Output> LayerStreamDecoder::decode(ByteSource& compressed, int out_fd,
                                                              const std::string& name) {
  DS_ASSIGN_OR_RETURN(auto out, RebuiltLayerWriter::open(out_fd, 0, impl_->limits.max_layer_bytes));
  DS_ASSIGN_OR_RETURN(SegmentOutput segment, decode_segment(compressed, *out, 0, name));
  if (!segment.layer_done)
    return make_error(ErrorCode::kCorrupt, name + ": layer stream ends before the layer does");
  DS_RETURN_IF_ERROR(out->flush());
  return Output{out->digest(), out->offset()};
}

Result<LayerStreamDecoder::SegmentOutput> LayerStreamDecoder::decode_segment(
    ByteSource& compressed, RebuiltLayerWriter& out, uint64_t first_entry,
    const std::string& name) {
  Impl& im = *impl_;
  const int out_fd = out.fd();
  struct Borrow final : ByteSource {
    explicit Borrow(ByteSource& s) : s_(s) {}
    Result<size_t> read(std::span<char> b) override { return s_.read(b); }
    ByteSource& s_;
  };
  auto plain =
      make_unzstd_prefix_source(std::make_unique<Borrow>(compressed), name, im.basis.dictionary());
  BufferedSource in(*plain);
  HeaderCoder header_coder;
  int64_t previous_basis_entry = -1;
  int64_t previous_content = -1;
  uint64_t entry_number = first_entry;
  bool layer_done = false;

  auto fail = [&](const std::string& what) {
    return make_error(ErrorCode::kCorrupt,
                      name + ": entry " + std::to_string(entry_number) + ": " + what);
  };
  auto copy_range = [&](int fd, uint64_t offset, uint64_t size) -> Status {
    FileSource source(fd, offset, size, "basis file");
    return copy_exact(source, out, size, "basis file");
  };

  // The payloads of the open delta group ('G'), taken in order by its members.
  std::string group;
  size_t group_taken = 0;
  auto group_open = [&] { return group_taken < group.size(); };

  uint64_t run_remaining = 0;
  while (true) {
    bool in_run = false;
    char tag;
    if (run_remaining > 0) {
      --run_remaining;
      tag = 0x02;
      in_run = true;
    } else {
      DS_ASSIGN_OR_RETURN(tag, read_byte(in));
      if (tag == 0x03) {
        DS_ASSIGN_OR_RETURN(run_remaining, read_varint(in, name));
        if (run_remaining == 0 || run_remaining > im.basis.entries().size())
          return fail("bad run length");
        --run_remaining;
        tag = 0x02;
        in_run = true;
      }
    }
    if ((tag == 0x12 || tag == 0x13) && group_open())
      return fail("the segment ends inside a delta group");
    if (tag == 0x12) {
      layer_done = true;
      break;
    }
    if (tag == 0x13) break;
    if (tag == 0x10) {
      DS_ASSIGN_OR_RETURN(uint64_t count, read_varint(in, name));
      if (count > (64u << 20)) return fail("trailer too long");
      std::string zeros(count, '\0');
      DS_RETURN_IF_ERROR(out.write(zeros));
      continue;
    }
    if (tag == 0x11) {
      DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(in, name));
      if (len > (64u << 20)) return fail("trailer too long");
      DS_RETURN_IF_ERROR(copy_exact(in, out, len, "layer stream trailer"));
      continue;
    }
    // An entry: header first.
    std::string header;
    const FileRecord* basis_record = nullptr;
    if (tag == 0x01) {
      DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(in, name));
      if (len < kTarBlock || len > (64u << 20) || len % kTarBlock != 0)
        return fail("bad header length");
      header.resize(len);
      DS_RETURN_IF_ERROR(read_exact(in, header, "layer stream header"));
    } else if (tag == 0x02 && in_run) {
      int64_t id = previous_basis_entry + 1;
      if (static_cast<uint64_t>(id) >= im.basis.entries().size())
        return fail("run goes past the basis entries");
      previous_basis_entry = id;
      basis_record = im.basis.entries()[id];
      static const std::string kRunCoding("\x20\x00", 2);
      std::string_view view = kRunCoding;
      DS_ASSIGN_OR_RETURN(
          header, with_context(header_coder.decode(basis_record->raw_metadata, view), name));
    } else if (tag == 0x02) {
      DS_ASSIGN_OR_RETURN(uint64_t delta, read_varint(in, name));
      // The delta comes from the stream: the sum must not overflow.
      int64_t id = 0;
      if (__builtin_add_overflow(previous_basis_entry + 1, unzigzag(delta), &id) || id < 0 ||
          static_cast<uint64_t>(id) >= im.basis.entries().size())
        return fail("basis entry out of range");
      previous_basis_entry = id;
      basis_record = im.basis.entries()[id];
      DS_ASSIGN_OR_RETURN(header,
                          with_context(header_coder.decode(basis_record->raw_metadata, in), name));
    } else {
      return fail("unknown record type " + std::to_string(static_cast<uint8_t>(tag)));
    }
    DS_RETURN_IF_ERROR(out.write(header));
    DS_ASSIGN_OR_RETURN(uint64_t size, with_context(payload_size_of(header), name));
    uint64_t payload_offset = out.offset();

    if (size > 0) {
      char op = 'S';
      if (!in_run) {
        DS_ASSIGN_OR_RETURN(op, read_byte(in));
      }
      switch (op) {
        case 'S': {
          if (!basis_record || basis_record->size != size)
            return fail("'same as basis' without a matching basis entry");
          int64_t content = im.basis.content_id(basis_record->digest);
          if (content < 0) return fail("basis entry has no content");
          const BasisContent& c = im.basis.contents()[content];
          DS_RETURN_IF_ERROR(copy_range(im.basis_files.fds[c.layer], c.payload_offset, size));
          break;
        }
        case 'C': {
          DS_ASSIGN_OR_RETURN(uint64_t delta, read_varint(in, name));
          int64_t content = 0;
          if (__builtin_add_overflow(previous_content + 1, unzigzag(delta), &content) ||
              content < 0 || static_cast<uint64_t>(content) >= im.basis.contents().size()) {
            return fail("basis content out of range");
          }
          previous_content = content;
          const BasisContent& c = im.basis.contents()[content];
          if (c.size != size) return fail("basis content size differs from the header");
          DS_RETURN_IF_ERROR(copy_range(im.basis_files.fds[c.layer], c.payload_offset, size));
          break;
        }
        case 'E': {
          DS_ASSIGN_OR_RETURN(uint64_t back, read_varint(in, name));
          if (back == 0 || back > im.earlier.size())
            return fail("reference to an earlier entry out of range");
          const EarlierEntry& e = im.earlier[im.earlier.size() - back];
          if (e.size != size) return fail("earlier entry size differs from the header");
          DS_RETURN_IF_ERROR(out.flush());
          DS_RETURN_IF_ERROR(copy_range(e.fd, e.offset, size));
          break;
        }
        case 'L':
          DS_RETURN_IF_ERROR(copy_exact(in, out, size, "layer stream literal"));
          break;
        case 'G': {
          if (group_open()) return fail("a delta group starts inside another");
          DS_ASSIGN_OR_RETURN(uint64_t total, read_varint(in, name));
          DS_ASSIGN_OR_RETURN(uint64_t count, read_varint(in, name));
          if (total > kMaxGroupBytes || total < size) return fail("bad delta group size");
          if (count == 0 || count > im.basis.contents().size())
            return fail("bad delta group prefix count");
          std::string prefix;
          for (uint64_t k = 0; k < count; ++k) {
            DS_ASSIGN_OR_RETURN(uint64_t content, read_varint(in, name));
            if (content >= im.basis.contents().size()) return fail("delta basis out of range");
            const BasisContent& c = im.basis.contents()[content];
            if (prefix.size() + c.size > kMaxGroupPrefix)
              return fail("delta group prefix too large");
            size_t at = prefix.size();
            prefix.resize(at + c.size);
            FileSource source(im.basis_files.fds[c.layer], c.payload_offset, c.size, "basis file");
            DS_RETURN_IF_ERROR(
                read_exact(source, std::span<char>(prefix.data() + at, c.size), "basis file"));
          }
          DS_ASSIGN_OR_RETURN(uint64_t frame_len, read_varint(in, name));
          if (frame_len > kMaxGroupBytes + (kMaxGroupBytes >> 4) + 1024)
            return fail("delta group frame too large");
          std::string frame(frame_len, '\0');
          DS_RETURN_IF_ERROR(read_exact(in, frame, "delta group"));
          auto plain_group = zstd_decompress_with_prefix(frame, prefix, total);
          if (!plain_group)
            return std::unexpected(std::move(plain_group)
                                       .error()
                                       .with_context(name + ": entry " +
                                                     std::to_string(entry_number) +
                                                     ": delta group"));
          if (plain_group->size() != total)
            return fail("delta group holds " + std::to_string(plain_group->size()) +
                        " bytes, its record says " + std::to_string(total));
          group = std::move(*plain_group);
          group_taken = 0;
          [[fallthrough]];
        }
        case 'g': {
          if (group.size() - group_taken < size)
            return fail("a delta group member is larger than what the group has left");
          DS_RETURN_IF_ERROR(out.write(std::string_view(group).substr(group_taken, size)));
          group_taken += size;
          if (!group_open()) group.clear(), group_taken = 0;
          break;
        }
        case 'R':
        case 'Z':
        case 'A': {
          DS_ASSIGN_OR_RETURN(uint64_t content, read_varint(in, name));
          DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(in, name));
          if (content >= im.basis.contents().size()) return fail("delta basis out of range");
          const BasisContent& c = im.basis.contents()[content];
          FileRangeRandomAccess basis_file(im.basis_files.fds[c.layer], c.payload_offset, c.size);
          LimitedSource delta(in, len);
          struct Tee final : ByteSink {
            Tee(ByteSink& a, uint64_t& n) : a_(a), n_(n) {}
            Status write(std::string_view d) override {
              n_ += d.size();
              return a_.write(d);
            }
            ByteSink& a_;
            uint64_t& n_;
          };
          uint64_t written = 0;
          Tee tee(out, written);
          Status patched = op == 'R'   ? rsync_patch(basis_file, delta, tee, size)
                           : op == 'Z' ? local_delta_decode(basis_file, delta, tee, size)
                                       : anchored_delta_decode(basis_file, delta, tee, size);
          if (!patched)
            return std::unexpected(std::move(patched).error().with_context(
                name + ": entry " + std::to_string(entry_number)));
          if (written != size)
            return fail("delta produced " + std::to_string(written) + " bytes, header says " +
                        std::to_string(size));
          if (delta.remaining() != 0)
            DS_RETURN_IF_ERROR(skip_exact(delta, delta.remaining(), "delta"));
          break;
        }
        default:
          return fail("unknown payload op " + std::to_string(static_cast<uint8_t>(op)));
      }
    }
    im.earlier.push_back(EarlierEntry{out_fd, payload_offset, size});
    // Padding.
    char pad_kind = 0;
    if (!in_run) {
      DS_ASSIGN_OR_RETURN(pad_kind, read_byte(in));
    }
    uint64_t pad = tar_padding(size);
    if (pad_kind == 0) {
      DS_RETURN_IF_ERROR(out.write(std::string(pad, '\0')));
    } else if (pad_kind == 1) {
      DS_RETURN_IF_ERROR(copy_exact(in, out, pad, "layer stream padding"));
    } else {
      return fail("bad padding marker");
    }
    ++entry_number;
  }
  // The stream must end here (and the zstd frame's checksum be good).
  char extra;
  DS_ASSIGN_OR_RETURN(size_t more, in.read(std::span<char>(&extra, 1)));
  if (more != 0)
    return make_error(ErrorCode::kCorrupt, name + ": data after the end of the layer stream");
  DS_RETURN_IF_ERROR(out.flush());
  return SegmentOutput{layer_done, entry_number - first_entry};
}

}  // namespace deltasync
