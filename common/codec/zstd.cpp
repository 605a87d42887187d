// zstd via libzstd: streaming decompression (concatenated frames allowed,
// window bounded so a hostile frame cannot make us allocate without limit)
// and streaming/one-shot compression.
#include <zstd.h>

#include <vector>

#include "common/codec/compression.h"

namespace deltasync {

namespace {

constexpr int kMaxWindowLog = 31;  // --long=31 streams are accepted, nothing larger

Error zstd_error(size_t code, std::string_view context) {
  return Error(ErrorCode::kCorrupt, std::string(context) + ": " + ZSTD_getErrorName(code));
}

class UnzstdSource final : public ByteSource {
 public:
  UnzstdSource(std::unique_ptr<ByteSource> inner, std::string name, std::string_view prefix = {})
      : inner_(std::move(inner)),
        name_(std::move(name)),
        in_(ZSTD_DStreamInSize()),
        prefix_(prefix) {
    ctx_ = ZSTD_createDCtx();
    ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, kMaxWindowLog);
    if (!prefix_.empty()) ZSTD_DCtx_refPrefix(ctx_, prefix_.data(), prefix_.size());
  }
  ~UnzstdSource() override { ZSTD_freeDCtx(ctx_); }

  Result<size_t> read(std::span<char> buffer) override {
    if (buffer.empty()) return size_t{0};
    ZSTD_outBuffer out{buffer.data(), buffer.size(), 0};
    while (out.pos == 0) {
      if (input_.pos == input_.size) {
        DS_ASSIGN_OR_RETURN(size_t got, inner_->read(in_));
        if (got == 0) {
          if (frame_done_) return size_t{0};
          return make_error(ErrorCode::kCorrupt, name_ + ": zstd stream is truncated");
        }
        input_ = {in_.data(), got, 0};
      }
      size_t rc = ZSTD_decompressStream(ctx_, &out, &input_);
      if (ZSTD_isError(rc))
        return std::unexpected(zstd_error(rc, name_ + ": zstd data is corrupt"));
      frame_done_ = (rc == 0);
      // A prefix applies to one frame; re-reference it for the next.
      if (frame_done_ && !prefix_.empty())
        ZSTD_DCtx_refPrefix(ctx_, prefix_.data(), prefix_.size());
    }
    return out.pos;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  std::string name_;
  std::vector<char> in_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  std::string_view prefix_;
  ZSTD_DCtx* ctx_;
  bool frame_done_ = true;
};

class ZstdSink final : public ByteSink {
 public:
  ZstdSink(ByteSink& out, int level, int threads) : out_(out), buf_(ZSTD_CStreamOutSize()) {
    ctx_ = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level);
    if (threads > 0) ZSTD_CCtx_setParameter(ctx_, ZSTD_c_nbWorkers, threads);
  }
  ZstdSink(ByteSink& out, std::string_view prefix, const ZstdPrefixOptions& options)
      : out_(out), buf_(ZSTD_CStreamOutSize()) {
    ctx_ = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, options.level);
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, options.checksum ? 1 : 0);
    int window_log = options.window_log;
    if (window_log == 0 && !prefix.empty()) {
      window_log = 20;
      while (window_log < kMaxWindowLog && (uint64_t{1} << window_log) < prefix.size() * 2)
        ++window_log;
    }
    if (window_log) ZSTD_CCtx_setParameter(ctx_, ZSTD_c_windowLog, window_log);
    if (options.long_distance_matching)
      ZSTD_CCtx_setParameter(ctx_, ZSTD_c_enableLongDistanceMatching, 1);
    if (!prefix.empty()) ZSTD_CCtx_refPrefix(ctx_, prefix.data(), prefix.size());
  }
  ~ZstdSink() override { ZSTD_freeCCtx(ctx_); }
  Status write(std::string_view data) override { return pump(data, ZSTD_e_continue); }
  Status finish() override {
    DS_RETURN_IF_ERROR(pump({}, ZSTD_e_end));
    return out_.finish();
  }

 private:
  Status pump(std::string_view data, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    while (true) {
      ZSTD_outBuffer out{buf_.data(), buf_.size(), 0};
      size_t rc = ZSTD_compressStream2(ctx_, &out, &in, mode);
      if (ZSTD_isError(rc)) {
        return make_error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(rc));
      }
      if (out.pos) DS_RETURN_IF_ERROR(out_.write(std::string_view(buf_.data(), out.pos)));
      bool done = mode == ZSTD_e_end ? rc == 0 : in.pos == in.size;
      if (done) break;
    }
    return ok_status();
  }
  ByteSink& out_;
  std::vector<char> buf_;
  ZSTD_CCtx* ctx_;
};

}  // namespace

std::unique_ptr<ByteSource> make_unzstd_source(std::unique_ptr<ByteSource> inner,
                                               std::string name) {
  return std::make_unique<UnzstdSource>(std::move(inner), std::move(name));
}

std::unique_ptr<ByteSink> make_zstd_sink(ByteSink& out, int level, int threads) {
  return std::make_unique<ZstdSink>(out, level, threads);
}

std::unique_ptr<ByteSink> make_zstd_prefix_sink(ByteSink& out, std::string_view prefix,
                                                const ZstdPrefixOptions& options) {
  return std::make_unique<ZstdSink>(out, prefix, options);
}

std::unique_ptr<ByteSource> make_unzstd_prefix_source(std::unique_ptr<ByteSource> inner,
                                                      std::string name, std::string_view prefix) {
  return std::make_unique<UnzstdSource>(std::move(inner), std::move(name), prefix);
}

Result<std::string> zstd_compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t rc = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(rc))
    return make_error(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(rc));
  out.resize(rc);
  return out;
}

Result<std::string> zstd_decompress(std::string_view data, size_t max_size) {
  MemorySource mem(data);
  struct Borrow final : ByteSource {
    explicit Borrow(ByteSource& s) : s_(s) {}
    Result<size_t> read(std::span<char> b) override { return s_.read(b); }
    ByteSource& s_;
  };
  UnzstdSource source(std::make_unique<Borrow>(mem), "zstd block");
  return read_all(source, max_size);
}

}  // namespace deltasync

namespace deltasync {

Result<std::string> zstd_compress_with_prefix(std::string_view data, std::string_view prefix,
                                              int level) {
  StringSink out;
  ZstdPrefixOptions options;
  options.level = level;
  options.checksum = false;
  auto sink = make_zstd_prefix_sink(out, prefix, options);
  DS_RETURN_IF_ERROR(sink->write(data));
  DS_RETURN_IF_ERROR(sink->finish());
  return std::move(out.data());
}

Result<std::string> zstd_compress_with_prefix(std::string_view data, std::string_view prefix,
                                              const ZstdPrefixOptions& options) {
  ZstdPrefixOptions chosen = options;
  if (chosen.window_log == 0) {
    uint64_t span = prefix.size() + data.size();
    chosen.window_log = 10;
    while (chosen.window_log < kMaxWindowLog && (uint64_t{1} << chosen.window_log) < span)
      ++chosen.window_log;
  }
  StringSink out;
  auto sink = make_zstd_prefix_sink(out, prefix, chosen);
  DS_RETURN_IF_ERROR(sink->write(data));
  DS_RETURN_IF_ERROR(sink->finish());
  return std::move(out.data());
}

Result<std::string> zstd_decompress_with_prefix(std::string_view data, std::string_view prefix,
                                                size_t max_size) {
  auto source =
      make_unzstd_prefix_source(std::make_unique<MemorySource>(data), "zstd block", prefix);
  return read_all(*source, max_size);
}

}  // namespace deltasync
