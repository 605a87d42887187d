// gzip via zlib: a streaming inflater that accepts concatenated members
// (as pigz and some registries produce) and a streaming deflater.
#include <zlib.h>

#include <vector>

#include "common/codec/compression.h"

namespace deltasync {

namespace {

class GunzipSource final : public ByteSource {
 public:
  GunzipSource(std::unique_ptr<ByteSource> inner, std::string name)
      : inner_(std::move(inner)), name_(std::move(name)), in_(kIoChunk) {
    stream_ = {};
    inflateInit2(&stream_, 16 + MAX_WBITS);
  }
  ~GunzipSource() override { inflateEnd(&stream_); }

  Result<size_t> read(std::span<char> buffer) override {
    if (buffer.empty() || finished_) return size_t{0};
    stream_.next_out = reinterpret_cast<Bytef*>(buffer.data());
    stream_.avail_out = static_cast<uInt>(std::min<size_t>(buffer.size(), 1u << 30));
    while (stream_.avail_out == buffer.size()) {
      if (stream_.avail_in == 0) {
        DS_ASSIGN_OR_RETURN(size_t got, inner_->read(in_));
        if (got == 0) {
          if (at_member_start_) {
            finished_ = true;
            return size_t{0};
          }
          return make_error(ErrorCode::kCorrupt, name_ + ": gzip stream is truncated");
        }
        stream_.next_in = reinterpret_cast<Bytef*>(in_.data());
        stream_.avail_in = static_cast<uInt>(got);
      }
      at_member_start_ = false;
      int rc = inflate(&stream_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Another member may follow.
        inflateReset(&stream_);
        at_member_start_ = true;
        if (stream_.avail_out != buffer.size()) break;
        continue;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return make_error(ErrorCode::kCorrupt,
                          name_ + ": gzip data is corrupt (" +
                              std::string(stream_.msg ? stream_.msg : "zlib error") + ")");
      }
    }
    return buffer.size() - stream_.avail_out;
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  std::string name_;
  std::vector<char> in_;
  z_stream stream_;
  bool at_member_start_ = true;
  bool finished_ = false;
};

class GzipSink final : public ByteSink {
 public:
  GzipSink(ByteSink& out, int level) : out_(out), buf_(kIoChunk) {
    stream_ = {};
    deflateInit2(&stream_, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  }
  ~GzipSink() override { deflateEnd(&stream_); }
  Status write(std::string_view data) override { return pump(data, Z_NO_FLUSH); }
  Status finish() override {
    DS_RETURN_IF_ERROR(pump({}, Z_FINISH));
    return out_.finish();
  }

 private:
  Status pump(std::string_view data, int flush) {
    stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream_.avail_in = static_cast<uInt>(data.size());
    while (true) {
      stream_.next_out = reinterpret_cast<Bytef*>(buf_.data());
      stream_.avail_out = static_cast<uInt>(buf_.size());
      int rc = deflate(&stream_, flush);
      size_t produced = buf_.size() - stream_.avail_out;
      if (produced) DS_RETURN_IF_ERROR(out_.write(std::string_view(buf_.data(), produced)));
      if (rc == Z_STREAM_ERROR) return make_error(ErrorCode::kInternal, "gzip: deflate failed");
      if (flush == Z_FINISH ? rc == Z_STREAM_END
                            : (stream_.avail_in == 0 && stream_.avail_out != 0))
        break;
    }
    return ok_status();
  }
  ByteSink& out_;
  std::vector<char> buf_;
  z_stream stream_;
};

}  // namespace

std::unique_ptr<ByteSource> make_gunzip_source(std::unique_ptr<ByteSource> inner,
                                               std::string name) {
  return std::make_unique<GunzipSource>(std::move(inner), std::move(name));
}

std::unique_ptr<ByteSink> make_gzip_sink(ByteSink& out, int level) {
  return std::make_unique<GzipSink>(out, level);
}

}  // namespace deltasync
