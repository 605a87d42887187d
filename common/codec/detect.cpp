#include <cstring>

#include "common/codec/compression.h"

namespace deltasync {

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "uncompressed";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "?";
}

Compression detect_compression(std::string_view head) {
  if (head.size() >= 2 && static_cast<uint8_t>(head[0]) == 0x1f &&
      static_cast<uint8_t>(head[1]) == 0x8b) {
    return Compression::kGzip;
  }
  if (head.size() >= 4 && std::memcmp(head.data(), "\x28\xb5\x2f\xfd", 4) == 0)
    return Compression::kZstd;
  return Compression::kNone;
}

namespace {
// Replays sniffed bytes before continuing with the inner source.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(std::string prefix, std::unique_ptr<ByteSource> inner)
      : prefix_(std::move(prefix)), inner_(std::move(inner)) {}
  Result<size_t> read(std::span<char> buffer) override {
    if (pos_ < prefix_.size()) {
      size_t n = std::min(buffer.size(), prefix_.size() - pos_);
      std::memcpy(buffer.data(), prefix_.data() + pos_, n);
      pos_ += n;
      return n;
    }
    return inner_->read(buffer);
  }

 private:
  std::string prefix_;
  size_t pos_ = 0;
  std::unique_ptr<ByteSource> inner_;
};
}  // namespace

Result<std::unique_ptr<ByteSource>> open_decompressed(std::unique_ptr<ByteSource> inner,
                                                      std::string name, Compression* detected) {
  std::string head(4, '\0');
  DS_ASSIGN_OR_RETURN(size_t got, read_full(*inner, head));
  head.resize(got);
  Compression c = detect_compression(head);
  if (detected) *detected = c;
  auto replay = std::make_unique<PrefixedSource>(std::move(head), std::move(inner));
  switch (c) {
    case Compression::kGzip:
      return make_gunzip_source(std::move(replay), std::move(name));
    case Compression::kZstd:
      return make_unzstd_source(std::move(replay), std::move(name));
    case Compression::kNone:
      break;
  }
  return std::unique_ptr<ByteSource>(std::move(replay));
}

}  // namespace deltasync
