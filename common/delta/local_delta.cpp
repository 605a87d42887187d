// Local deltas: when the encoder holds the basis itself, the new file is
// compressed by zstd with the nearby part of the basis as a prefix
// dictionary (long-distance matching on, window covering prefix + data), so
// unchanged runs cost a few bytes each instead of rsync's block-sized
// literals, and no signature needs to travel.
//
// The file is cut into independent segments so memory stays bounded (one
// segment and its basis window per thread) and segments can be compressed
// in parallel. Segment [s, s+len) uses basis window [s - margin, s + len +
// margin] clamped to the basis: edits in place and insertions or deletions
// smaller than the margin keep their matches.
//
// Format (integers are LEB128 varints):
//   "DSLD" u8 version=1  new_size  segment_count
//   per segment: window_offset window_len segment_len compressed_len
//                <compressed_len bytes: one zstd frame, content size and
//                 checksum flags set, made with the window as prefix>
// The decoder trusts nothing in it: windows must lie inside the basis,
// segments must add up to new_size, output is bounded by max_output, a frame's
// window may not exceed what its header declares, and the zstd checksum
// catches damaged frames. Bytes already written to the sink before an error
// are not retracted: write into something that can be discarded.
//
// This is the only file in common/delta that includes <zstd.h>.
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <thread>
#include <vector>

#include "common/delta/block_delta.h"
#include "common/util/varint.h"

namespace deltasync {

namespace {

constexpr char kMagic[4] = {'D', 'S', 'L', 'D'};
constexpr uint8_t kVersion = 1;
// Window + segment bytes of one frame: bounds the memory a hostile delta can
// make the decoder allocate (and keeps zstd's windowLog <= 30).
constexpr uint64_t kMaxSpan = 1ull << 30;
constexpr int kMaxThreads = 64;
constexpr int kMinWindowLog = 10;  // ZSTD_WINDOWLOG_MIN, which needs ZSTD_STATIC_LINKING_ONLY

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* ctx) const { ZSTD_freeCCtx(ctx); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};

struct Window {
  uint64_t offset = 0;
  uint64_t length = 0;
};

Window basis_window(uint64_t basis_size, uint64_t start, uint64_t length, uint64_t margin) {
  uint64_t lo = start > margin ? start - margin : 0;
  uint64_t end = start + length;
  uint64_t hi = end > UINT64_MAX - margin ? UINT64_MAX : end + margin;
  lo = std::min(lo, basis_size);
  hi = std::min(hi, basis_size);
  return Window{lo, hi - lo};
}

// windowLog covering `span` bytes (prefix + segment), so every match into the
// prefix is reachable.
int window_log_for(uint64_t span) {
  int log = span <= 1 ? 0 : 64 - std::countl_zero(span - 1);
  return std::max(log, kMinWindowLog);
}

Status read_fully_at(RandomAccessInput& input, uint64_t offset, std::span<char> buffer,
                     std::string_view what) {
  size_t done = 0;
  while (done < buffer.size()) {
    DS_ASSIGN_OR_RETURN(size_t got, input.read_at(offset + done, buffer.subspan(done)));
    if (got == 0) {
      return make_error(ErrorCode::kCorrupt, std::string(what) + ": ends at " +
                                                 std::to_string(offset + done) + ", expected " +
                                                 std::to_string(offset + buffer.size()));
    }
    done += got;
  }
  return ok_status();
}

Error zstd_error(size_t code, ErrorCode kind, const std::string& context) {
  return Error(kind, context + ": zstd: " + ZSTD_getErrorName(code));
}

// One segment's inputs and compressed frame; buffers are reused across batches.
struct Segment {
  uint64_t start = 0;
  uint64_t length = 0;
  Window window;
  std::vector<char> prefix;
  std::vector<char> data;
  std::vector<char> frame;
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx;
  Status status;
};

Status compress_segment(Segment& seg, int level) {
  std::string context = "local delta: segment at " + std::to_string(seg.start);
  if (!seg.cctx) seg.cctx.reset(ZSTD_createCCtx());
  ZSTD_CCtx* cctx = seg.cctx.get();
  if (!cctx) return make_error(ErrorCode::kInternal, context + ": ZSTD_createCCtx failed");
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  const std::pair<ZSTD_cParameter, int> settings[] = {
      {ZSTD_c_compressionLevel, level},
      {ZSTD_c_enableLongDistanceMatching, 1},
      {ZSTD_c_windowLog, window_log_for(seg.window.length + seg.length)},
      {ZSTD_c_checksumFlag, 1},
      {ZSTD_c_contentSizeFlag, 1},
  };
  for (auto [param, value] : settings) {
    size_t rc = ZSTD_CCtx_setParameter(cctx, param, value);
    if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kInternal, context));
  }
  if (!seg.prefix.empty()) {
    size_t rc = ZSTD_CCtx_refPrefix(cctx, seg.prefix.data(), seg.prefix.size());
    if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kInternal, context));
  }
  seg.frame.resize(ZSTD_compressBound(seg.data.size()));
  size_t rc =
      ZSTD_compress2(cctx, seg.frame.data(), seg.frame.size(), seg.data.data(), seg.data.size());
  if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kInternal, context));
  seg.frame.resize(rc);
  return ok_status();
}

}  // namespace

Status local_delta_encode(RandomAccessInput& basis, RandomAccessInput& new_file,
                          const LocalDeltaParams& params, ByteSink& delta) {
  const uint64_t basis_size = basis.size();
  const uint64_t new_size = new_file.size();
  const uint64_t seg_bytes = params.segment_bytes;
  const uint64_t margin = params.window_margin;
  if (seg_bytes == 0 || margin > kMaxSpan / 2 || seg_bytes > kMaxSpan - 2 * margin ||
      params.level < ZSTD_minCLevel() || params.level > ZSTD_maxCLevel() || params.threads < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "local delta: bad parameters (level " + std::to_string(params.level) +
                          ", segment " + std::to_string(seg_bytes) + ", margin " +
                          std::to_string(margin) + ", threads " + std::to_string(params.threads) +
                          "; segment + 2 * margin must be at most " + std::to_string(kMaxSpan) +
                          ")");
  }
  const uint64_t count = (new_size + seg_bytes - 1) / seg_bytes;

  std::string header(kMagic, sizeof kMagic);
  header.push_back(static_cast<char>(kVersion));
  put_varint(header, new_size);
  put_varint(header, count);
  DS_RETURN_IF_ERROR(delta.write(header));

  const auto threads = static_cast<size_t>(
      std::min<uint64_t>({static_cast<uint64_t>(params.threads), static_cast<uint64_t>(kMaxThreads),
                          std::max<uint64_t>(count, 1)}));
  std::vector<Segment> slots(threads);
  for (uint64_t first = 0; first < count; first += threads) {
    const size_t batch = static_cast<size_t>(std::min<uint64_t>(threads, count - first));
    // Read on this thread (input objects belong to one thread), compress in
    // parallel, write in order.
    for (size_t i = 0; i < batch; ++i) {
      Segment& seg = slots[i];
      seg.start = (first + i) * seg_bytes;
      seg.length = std::min(seg_bytes, new_size - seg.start);
      seg.window = basis_window(basis_size, seg.start, seg.length, margin);
      seg.prefix.resize(seg.window.length);
      seg.data.resize(seg.length);
      DS_RETURN_IF_ERROR(read_fully_at(basis, seg.window.offset, seg.prefix, "local delta: basis"));
      DS_RETURN_IF_ERROR(read_fully_at(new_file, seg.start, seg.data, "local delta: new file"));
    }
    if (batch == 1) {
      slots[0].status = compress_segment(slots[0], params.level);
    } else {
      std::vector<std::jthread> workers;
      workers.reserve(batch - 1);
      for (size_t i = 1; i < batch; ++i) {
        workers.emplace_back(
            [&seg = slots[i], level = params.level] { seg.status = compress_segment(seg, level); });
      }
      slots[0].status = compress_segment(slots[0], params.level);
    }  // joins the workers
    for (size_t i = 0; i < batch; ++i) {
      Segment& seg = slots[i];
      DS_RETURN_IF_ERROR(seg.status);
      std::string seg_header;
      put_varint(seg_header, seg.window.offset);
      put_varint(seg_header, seg.window.length);
      put_varint(seg_header, seg.length);
      put_varint(seg_header, seg.frame.size());
      DS_RETURN_IF_ERROR(delta.write(seg_header));
      DS_RETURN_IF_ERROR(delta.write(std::string_view(seg.frame.data(), seg.frame.size())));
    }
  }
  return ok_status();
}

Status local_delta_decode(RandomAccessInput& basis, ByteSource& delta, ByteSink& out,
                          uint64_t max_output) {
  const uint64_t basis_size = basis.size();
  char head[sizeof kMagic + 1];
  DS_RETURN_IF_ERROR(with_context(read_exact(delta, head, "header"), "local delta"));
  if (!std::equal(kMagic, kMagic + sizeof kMagic, head)) {
    return make_error(ErrorCode::kCorrupt, "local delta: bad magic (not a local delta)");
  }
  if (static_cast<uint8_t>(head[sizeof kMagic]) != kVersion) {
    return make_error(ErrorCode::kCorrupt,
                      "local delta: unknown version " +
                          std::to_string(static_cast<uint8_t>(head[sizeof kMagic])));
  }
  DS_ASSIGN_OR_RETURN(uint64_t new_size, read_varint(delta, "local delta: new size"));
  DS_ASSIGN_OR_RETURN(uint64_t count, read_varint(delta, "local delta: segment count"));
  if (new_size > max_output) {
    return make_error(ErrorCode::kCorrupt, "local delta: output of " + std::to_string(new_size) +
                                               " bytes exceeds its limit of " +
                                               std::to_string(max_output));
  }
  if (count > new_size || (count == 0) != (new_size == 0)) {
    return make_error(ErrorCode::kCorrupt, "local delta: " + std::to_string(count) +
                                               " segments for " + std::to_string(new_size) +
                                               " bytes");
  }

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return make_error(ErrorCode::kInternal, "local delta: ZSTD_createDCtx failed");
  std::vector<char> prefix;
  std::vector<char> inbuf(ZSTD_DStreamInSize());
  std::vector<char> outbuf(ZSTD_DStreamOutSize());
  uint64_t total = 0;
  for (uint64_t index = 0; index < count; ++index) {
    const std::string context = "local delta: segment " + std::to_string(index);
    DS_ASSIGN_OR_RETURN(uint64_t win_offset, read_varint(delta, "local delta: window offset"));
    DS_ASSIGN_OR_RETURN(uint64_t win_length, read_varint(delta, "local delta: window length"));
    DS_ASSIGN_OR_RETURN(uint64_t seg_length, read_varint(delta, "local delta: segment length"));
    DS_ASSIGN_OR_RETURN(uint64_t frame_length,
                        read_varint(delta, "local delta: compressed length"));
    if (win_offset > basis_size || win_length > basis_size - win_offset) {
      return make_error(ErrorCode::kCorrupt,
                        context + ": basis window [" + std::to_string(win_offset) + ", +" +
                            std::to_string(win_length) + ") lies outside the basis of " +
                            std::to_string(basis_size) + " bytes");
    }
    if (seg_length == 0 || seg_length > new_size - total) {
      return make_error(ErrorCode::kCorrupt, context + ": length " + std::to_string(seg_length) +
                                                 " does not fit the declared size " +
                                                 std::to_string(new_size));
    }
    if (win_length > kMaxSpan || seg_length > kMaxSpan - win_length) {
      return make_error(ErrorCode::kCorrupt,
                        context + ": window + segment exceed " + std::to_string(kMaxSpan));
    }
    prefix.resize(win_length);
    DS_RETURN_IF_ERROR(read_fully_at(basis, win_offset, prefix, context + ": basis"));

    ZSTD_DCtx* d = dctx.get();
    ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
    size_t rc =
        ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, window_log_for(win_length + seg_length));
    if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kInternal, context));
    if (!prefix.empty()) {
      rc = ZSTD_DCtx_refPrefix(d, prefix.data(), prefix.size());
      if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kInternal, context));
    }

    LimitedSource frame(delta, frame_length);
    uint64_t produced = 0;
    bool frame_done = false;
    while (true) {
      DS_ASSIGN_OR_RETURN(size_t got, frame.read(inbuf));
      if (got == 0) break;
      if (frame_done)
        return make_error(ErrorCode::kCorrupt, context + ": data after the zstd frame");
      ZSTD_inBuffer input{inbuf.data(), got, 0};
      while (true) {
        ZSTD_outBuffer output{outbuf.data(), outbuf.size(), 0};
        rc = ZSTD_decompressStream(d, &output, &input);
        if (ZSTD_isError(rc)) return std::unexpected(zstd_error(rc, ErrorCode::kCorrupt, context));
        if (output.pos > 0) {
          produced += output.pos;
          if (produced > seg_length) {
            return make_error(ErrorCode::kCorrupt, context + ": decodes to more than its " +
                                                       std::to_string(seg_length) + " bytes");
          }
          DS_RETURN_IF_ERROR(out.write(std::string_view(outbuf.data(), output.pos)));
        }
        if (rc == 0) {
          frame_done = true;
          if (input.pos < input.size) {
            return make_error(ErrorCode::kCorrupt, context + ": data after the zstd frame");
          }
          break;
        }
        if (input.pos == input.size && output.pos < output.size) break;
      }
    }
    if (frame.remaining() > 0) return make_error(ErrorCode::kCorrupt, context + ": truncated");
    if (!frame_done) return make_error(ErrorCode::kCorrupt, context + ": zstd frame is truncated");
    if (produced != seg_length) {
      return make_error(ErrorCode::kCorrupt, context + ": decodes to " + std::to_string(produced) +
                                                 " bytes, header says " +
                                                 std::to_string(seg_length));
    }
    total += seg_length;
  }
  if (total != new_size) {
    return make_error(ErrorCode::kCorrupt, "local delta: segments hold " + std::to_string(total) +
                                               " bytes, header says " + std::to_string(new_size));
  }
  return ok_status();
}

}  // namespace deltasync
