// Anchored delta: copy what is unchanged, compress only what changed.
//
// Format: "DSAD" version(1) varint(new_size), then commands until 'E':
//   'C' varint(basis_offset) varint(length)                      copy from the basis
//   'P' varint(window_offset) varint(window_length) varint(output_length)
//       varint(compressed_length) zstd-frame                     bytes compressed with
//                                                                basis[window] as prefix
//   'E'                                                          end; total must be new_size
// The encoder walks the new file in chunks. A chunk equal to the basis at the
// current alignment (new offset - drift) extends a COPY. Otherwise it looks
// for the chunk's first 64 bytes within search_radius of the expected basis
// offset; a full-chunk match there re-anchors (drift changes: an insertion or
// deletion happened). Chunks that match nowhere accumulate into a changed
// region, compressed with zstd against the basis around it.
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "common/delta/block_delta.h"
#include "common/util/varint.h"

namespace deltasync {

namespace {

constexpr char kMagic[4] = {'D', 'S', 'A', 'D'};
constexpr uint8_t kVersion = 1;
constexpr size_t kAnchor = 64;
constexpr uint64_t kMaxWindow = 64ull << 20;
constexpr uint64_t kCacheBytes = 8ull << 20;  // basis bytes kept for the re-anchor search

Status read_at_exact(RandomAccessInput& input, uint64_t offset, std::span<char> buffer,
                     const char* what) {
  size_t done = 0;
  while (done < buffer.size()) {
    DS_ASSIGN_OR_RETURN(size_t got, input.read_at(offset + done, buffer.subspan(done)));
    if (got == 0)
      return make_error(ErrorCode::kCorrupt, std::string(what) + ": file is shorter than expected");
    done += got;
  }
  return ok_status();
}

int window_log_for(uint64_t span) {
  int log = 10;
  while (log < 30 && (uint64_t{1} << log) < span) ++log;
  return log;
}

class Encoder {
 public:
  Encoder(RandomAccessInput& basis, RandomAccessInput& fresh, const AnchoredDeltaParams& p,
          ByteSink& out)
      : basis_(basis), new_(fresh), p_(p), out_(out), chunk_(p.chunk_bytes, '\0') {
    cctx_ = ZSTD_createCCtx();
  }
  ~Encoder() { ZSTD_freeCCtx(cctx_); }

  Status run() {
    std::string head(kMagic, 4);
    head.push_back(static_cast<char>(kVersion));
    put_varint(head, new_.size());
    DS_RETURN_IF_ERROR(out_.write(head));
    const uint64_t n = new_.size();
    for (uint64_t pos = 0; pos < n;) {
      uint64_t len = std::min<uint64_t>(p_.chunk_bytes, n - pos);
      DS_RETURN_IF_ERROR(read_at_exact(new_, pos, std::span<char>(chunk_.data(), len), "new file"));
      std::optional<uint64_t> at = match_at(pos, len);
      if (at) {
        DS_RETURN_IF_ERROR(flush_region());
        DS_RETURN_IF_ERROR(extend_copy(*at, len));
      } else {
        DS_RETURN_IF_ERROR(flush_copy());
        if (!region_len_) region_start_ = pos;
        region_len_ += len;
        if (region_len_ >= p_.max_region) DS_RETURN_IF_ERROR(flush_region());
      }
      pos += len;
    }
    DS_RETURN_IF_ERROR(flush_region());
    DS_RETURN_IF_ERROR(flush_copy());
    return out_.write("E");
  }

 private:
  // Where in the basis the chunk now in chunk_ (new offset pos) can be copied from.
  std::optional<uint64_t> match_at(uint64_t pos, uint64_t len) {
    int64_t expected = static_cast<int64_t>(pos) - drift_;
    if (equal_at(expected, len)) return static_cast<uint64_t>(expected);
    if (len < kAnchor || basis_.size() < kAnchor) return std::nullopt;
    // Re-anchor: find the chunk's first bytes near the expected place.
    int64_t lo = std::max<int64_t>(0, expected - static_cast<int64_t>(p_.search_radius));
    int64_t hi = std::min<int64_t>(static_cast<int64_t>(basis_.size()),
                                   expected + static_cast<int64_t>(p_.search_radius + len));
    if (hi - lo < static_cast<int64_t>(kAnchor)) return std::nullopt;
    const char* begin = basis_view(static_cast<uint64_t>(lo), static_cast<uint64_t>(hi - lo));
    if (!begin) return std::nullopt;
    const char* end = begin + (hi - lo);
    for (const char* hit = begin; hit + kAnchor <= end;) {
      hit = static_cast<const char*>(
          ::memmem(hit, static_cast<size_t>(end - hit), chunk_.data(), kAnchor));
      if (!hit) break;
      int64_t candidate = lo + (hit - begin);
      if (equal_at(candidate, len)) {
        drift_ = static_cast<int64_t>(pos) - candidate;
        return static_cast<uint64_t>(candidate);
      }
      ++hit;
    }
    return std::nullopt;
  }

  bool equal_at(int64_t basis_offset, uint64_t len) {
    if (basis_offset < 0 || static_cast<uint64_t>(basis_offset) + len > basis_.size()) return false;
    const char* bytes = basis_view(static_cast<uint64_t>(basis_offset), len);
    return bytes && std::memcmp(bytes, chunk_.data(), len) == 0;
  }

  // Basis bytes [offset, offset + len) from a cached window that slides
  // forward with the walk: consecutive searches overlap by all but a chunk,
  // so reading each afresh would read every basis byte ~search_radius/chunk
  // times. Null on a read error (the caller then treats it as no match).
  const char* basis_view(uint64_t offset, uint64_t len) {
    if (offset < cache_offset_ || offset + len > cache_offset_ + cache_.size()) {
      uint64_t want = std::max<uint64_t>(len, kCacheBytes);
      uint64_t load = std::min<uint64_t>(want, basis_.size() - offset);
      cache_.resize(load);
      cache_offset_ = offset;
      if (!read_at_exact(basis_, offset, cache_, "basis file")) {
        cache_.clear();
        return nullptr;
      }
    }
    return cache_.data() + (offset - cache_offset_);
  }

  Status extend_copy(uint64_t basis_offset, uint64_t len) {
    if (copy_len_ && copy_start_ + copy_len_ == basis_offset) {
      copy_len_ += len;
      return ok_status();
    }
    DS_RETURN_IF_ERROR(flush_copy());
    copy_start_ = basis_offset;
    copy_len_ = len;
    return ok_status();
  }

  Status flush_copy() {
    if (!copy_len_) return ok_status();
    std::string cmd(1, 'C');
    put_varint(cmd, copy_start_);
    put_varint(cmd, copy_len_);
    copy_len_ = 0;
    return out_.write(cmd);
  }

  Status flush_region() {
    if (!region_len_) return ok_status();
    uint64_t start = region_start_, len = region_len_;
    region_len_ = 0;
    // Basis window around where this region sits in the basis.
    int64_t center = static_cast<int64_t>(start) - drift_;
    int64_t wlo = std::max<int64_t>(0, center - static_cast<int64_t>(p_.window_margin));
    int64_t whi = std::min<int64_t>(static_cast<int64_t>(basis_.size()),
                                    center + static_cast<int64_t>(len + p_.window_margin));
    if (whi < wlo) whi = wlo;
    uint64_t wlen = std::min<uint64_t>(static_cast<uint64_t>(whi - wlo), kMaxWindow);
    std::string window(wlen, '\0');
    DS_RETURN_IF_ERROR(read_at_exact(basis_, static_cast<uint64_t>(wlo), window, "basis file"));
    std::string data(len, '\0');
    DS_RETURN_IF_ERROR(read_at_exact(new_, start, data, "new file"));
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, p_.level);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_windowLog, window_log_for(wlen + len));
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (wlen) ZSTD_CCtx_refPrefix(cctx_, window.data(), window.size());
    std::string frame(ZSTD_compressBound(len), '\0');
    size_t rc = ZSTD_compress2(cctx_, frame.data(), frame.size(), data.data(), data.size());
    if (ZSTD_isError(rc))
      return make_error(ErrorCode::kInternal,
                        std::string("anchored delta: ") + ZSTD_getErrorName(rc));
    frame.resize(rc);
    std::string cmd(1, 'P');
    put_varint(cmd, static_cast<uint64_t>(wlo));
    put_varint(cmd, wlen);
    put_varint(cmd, len);
    put_varint(cmd, frame.size());
    DS_RETURN_IF_ERROR(out_.write(cmd));
    return out_.write(frame);
  }

  RandomAccessInput& basis_;
  RandomAccessInput& new_;
  AnchoredDeltaParams p_;
  ByteSink& out_;
  std::string chunk_, cache_;
  uint64_t cache_offset_ = 0;
  int64_t drift_ = 0;
  uint64_t copy_start_ = 0, copy_len_ = 0;
  uint64_t region_start_ = 0, region_len_ = 0;
  ZSTD_CCtx* cctx_;
};

}  // namespace

Status anchored_delta_encode(RandomAccessInput& basis, RandomAccessInput& new_file,
                             const AnchoredDeltaParams& params, ByteSink& delta) {
  if (params.chunk_bytes < kAnchor || params.chunk_bytes > (16u << 20)) {
    return make_error(ErrorCode::kInvalidArgument, "anchored delta: chunk size out of range");
  }
  Encoder encoder(basis, new_file, params, delta);
  return encoder.run();
}

Status anchored_delta_decode(RandomAccessInput& basis, ByteSource& delta, ByteSink& out,
                             uint64_t max_output) {
  char head[5];
  DS_RETURN_IF_ERROR(read_exact(delta, std::span<char>(head, 5), "anchored delta"));
  if (std::memcmp(head, kMagic, 4) != 0 || static_cast<uint8_t>(head[4]) != kVersion) {
    return make_error(ErrorCode::kCorrupt, "anchored delta: bad magic or version");
  }
  DS_ASSIGN_OR_RETURN(uint64_t new_size, read_varint(delta, "anchored delta"));
  if (new_size > max_output) {
    return make_error(ErrorCode::kCorrupt, "anchored delta: declares " + std::to_string(new_size) +
                                               " bytes, more than the " +
                                               std::to_string(max_output) + " allowed");
  }
  uint64_t written = 0;
  std::vector<char> buffer(1 << 20);
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  struct Free {
    ZSTD_DCtx* d;
    ~Free() { ZSTD_freeDCtx(d); }
  } guard{dctx};
  while (true) {
    char cmd;
    DS_RETURN_IF_ERROR(read_exact(delta, std::span<char>(&cmd, 1), "anchored delta"));
    if (cmd == 'E') break;
    if (cmd == 'C') {
      DS_ASSIGN_OR_RETURN(uint64_t offset, read_varint(delta, "anchored delta"));
      DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(delta, "anchored delta"));
      if (offset > basis.size() || len > basis.size() - offset) {
        return make_error(ErrorCode::kCorrupt, "anchored delta: copy refers outside its basis");
      }
      if (len > new_size - written)
        return make_error(ErrorCode::kCorrupt, "anchored delta: writes more than declared");
      for (uint64_t done = 0; done < len;) {
        size_t want = std::min<uint64_t>(buffer.size(), len - done);
        DS_RETURN_IF_ERROR(read_at_exact(basis, offset + done, std::span<char>(buffer.data(), want),
                                         "basis file"));
        DS_RETURN_IF_ERROR(out.write(std::string_view(buffer.data(), want)));
        done += want;
      }
      written += len;
    } else if (cmd == 'P') {
      DS_ASSIGN_OR_RETURN(uint64_t woff, read_varint(delta, "anchored delta"));
      DS_ASSIGN_OR_RETURN(uint64_t wlen, read_varint(delta, "anchored delta"));
      DS_ASSIGN_OR_RETURN(uint64_t len, read_varint(delta, "anchored delta"));
      DS_ASSIGN_OR_RETURN(uint64_t clen, read_varint(delta, "anchored delta"));
      if (woff > basis.size() || wlen > basis.size() - woff || wlen > kMaxWindow) {
        return make_error(ErrorCode::kCorrupt, "anchored delta: window refers outside its basis");
      }
      if (len > new_size - written || len > (64u << 20) || clen > ZSTD_compressBound(len) + 1024) {
        return make_error(ErrorCode::kCorrupt, "anchored delta: patch sizes are implausible");
      }
      std::string window(wlen, '\0');
      DS_RETURN_IF_ERROR(read_at_exact(basis, woff, window, "basis file"));
      std::string frame(clen, '\0');
      DS_RETURN_IF_ERROR(read_exact(delta, frame, "anchored delta"));
      std::string data(len, '\0');
      ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
      ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, window_log_for(wlen + len) + 1);
      if (wlen) ZSTD_DCtx_refPrefix(dctx, window.data(), window.size());
      size_t rc = ZSTD_decompressDCtx(dctx, data.data(), data.size(), frame.data(), frame.size());
      if (ZSTD_isError(rc) || rc != len) {
        return make_error(ErrorCode::kCorrupt,
                          std::string("anchored delta: patch does not decode (") +
                              (ZSTD_isError(rc) ? ZSTD_getErrorName(rc) : "wrong size") + ")");
      }
      DS_RETURN_IF_ERROR(out.write(data));
      written += len;
    } else {
      return make_error(ErrorCode::kCorrupt, "anchored delta: unknown command");
    }
  }
  if (written != new_size) {
    return make_error(ErrorCode::kCorrupt, "anchored delta: produced " + std::to_string(written) +
                                               " of " + std::to_string(new_size) + " bytes");
  }
  return ok_status();
}

}  // namespace deltasync
