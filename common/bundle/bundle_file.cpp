#include "common/bundle/bundle_file.h"

#include <cstring>

#include "common/codec/compression.h"

namespace deltasync {

namespace {
constexpr std::string_view kMagic = "DSBUNDL2";
constexpr std::string_view kMagicV1 = "DSBUNDL1";

std::string length_prefix(uint32_t n) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}
}  // namespace

BundleWriter::BundleWriter(ByteSink& out) : out_(out) {}

Status BundleWriter::write_raw(std::string_view data) {
  hasher_.update(data);
  written_ += data.size();
  return out_.write(data);
}

Status BundleWriter::write_frame(const wire::BundleFrame& frame) {
  if (!magic_written_) {
    DS_RETURN_IF_ERROR(write_raw(kMagic));
    magic_written_ = true;
  }
  std::string body;
  if (!frame.SerializeToString(&body))
    return make_error(ErrorCode::kInternal, "bundle: cannot serialize a frame");
  if (body.size() > kMaxFrameBytes)
    return make_error(ErrorCode::kInternal, "bundle: frame too large");
  DS_RETURN_IF_ERROR(write_raw(length_prefix(static_cast<uint32_t>(body.size()))));
  return write_raw(body);
}

Status BundleWriter::write_header(const wire::BundleHeader& header) {
  // Digests and the config repeat each other: compressed, the header of a
  // small update is a few hundred bytes.
  std::string plain;
  if (!header.SerializeToString(&plain))
    return make_error(ErrorCode::kInternal, "bundle: cannot serialize the header");
  DS_ASSIGN_OR_RETURN(std::string packed, zstd_compress(plain, 19));
  wire::BundleFrame frame;
  frame.set_header_zstd(packed);
  return write_frame(frame);
}

Status BundleWriter::begin_layer(uint32_t target_index) {
  wire::BundleFrame frame;
  frame.mutable_layer_begin()->set_target_index(target_index);
  layer_sink_.total = 0;
  return write_frame(frame);
}

Status BundleWriter::LayerSink::write(std::string_view data) {
  total += data.size();
  while (!data.empty()) {
    size_t take = std::min(data.size(), kLayerDataChunk - pending_.size());
    pending_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (pending_.size() == kLayerDataChunk) DS_RETURN_IF_ERROR(flush());
  }
  return ok_status();
}

Status BundleWriter::LayerSink::flush() {
  if (pending_.empty()) return ok_status();
  wire::BundleFrame frame;
  frame.set_layer_data(pending_);
  pending_.clear();
  return writer_.write_frame(frame);
}

Status BundleWriter::end_layer(uint32_t target_index) {
  DS_RETURN_IF_ERROR(layer_sink_.flush());
  wire::BundleFrame frame;
  frame.mutable_layer_end()->set_target_index(target_index);
  frame.mutable_layer_end()->set_stream_bytes(layer_sink_.total);
  return write_frame(frame);
}

Status BundleWriter::finish() {
  Digest digest = hasher_.finish();
  wire::BundleFrame frame;
  frame.mutable_trailer()->set_sha256(
      std::string(reinterpret_cast<const char*>(digest.raw().data()), 32));
  if (signer_ != nullptr) {
    DS_ASSIGN_OR_RETURN(BundleSignature signature, signer_->sign(digest));
    auto* out = frame.mutable_trailer()->mutable_signature();
    out->set_scheme(signature.scheme == BundleSignature::Scheme::kX509
                        ? wire::BundleSignatureWire::X509
                        : wire::BundleSignatureWire::ED25519);
    out->set_signature(signature.signature);
    for (const auto& der : signature.chain_der) out->add_certificate_chain(der);
    out->set_public_key(signature.public_key);
  }
  std::string body;
  frame.SerializeToString(&body);
  DS_RETURN_IF_ERROR(out_.write(length_prefix(static_cast<uint32_t>(body.size()))));
  DS_RETURN_IF_ERROR(out_.write(body));
  written_ += 4 + body.size();
  return out_.finish();
}

BundleReader::BundleReader(std::filesystem::path path, std::unique_ptr<FileSource> file)
    : path_(std::move(path)), file_(std::move(file)) {}

Result<std::unique_ptr<BundleReader>> BundleReader::open(const std::filesystem::path& path) {
  DS_ASSIGN_OR_RETURN(auto file, open_file_source(path));
  return std::unique_ptr<BundleReader>(new BundleReader(path, std::move(file)));
}

Result<bool> BundleReader::read_frame(wire::BundleFrame& frame, std::string* raw_out) {
  char prefix[4];
  DS_ASSIGN_OR_RETURN(size_t got, read_full(*input_, std::span<char>(prefix, 4)));
  if (got == 0) return false;
  if (got != 4) return make_error(ErrorCode::kCorrupt, "frame length is truncated");
  uint32_t length = 0;
  for (int i = 0; i < 4; ++i)
    length |= static_cast<uint32_t>(static_cast<uint8_t>(prefix[i])) << (8 * i);
  if (length > kMaxFrameBytes) {
    return make_error(ErrorCode::kCorrupt, "frame of " + std::to_string(length) +
                                               " bytes exceeds the limit of " +
                                               std::to_string(kMaxFrameBytes));
  }
  std::string body(length, '\0');
  DS_RETURN_IF_ERROR(read_exact(*input_, body, "frame"));
  if (!frame.ParseFromString(body))
    return make_error(ErrorCode::kCorrupt, "frame is not a valid message");
  if (raw_out) *raw_out = std::string(prefix, 4) + body;
  return true;
}

Status BundleReader::verify() {
  auto context = "bundle " + path_.string();
  auto corrupt = [&](const std::string& why) {
    return make_error(ErrorCode::kCorrupt,
                      context + ": " + why + " (the file is damaged or incomplete; copy it again)");
  };
  DS_ASSIGN_OR_RETURN(auto file, open_file_source(path_));
  BufferedSource input(*file);
  std::string magic(kMagic.size(), '\0');
  DS_ASSIGN_OR_RETURN(size_t got, read_full(input, magic));
  if (got != magic.size() || (magic != kMagic && magic != kMagicV1)) {
    if (got == magic.size() && magic.starts_with("DSBUNDL")) {
      return make_error(ErrorCode::kUnsupported,
                        context + ": bundle format version '" + magic.substr(7) +
                            "' is not supported by this deltarecvd (it reads versions 1 and 2)");
    }
    return corrupt("not a deltasync bundle (bad magic)");
  }
  format_version_ = magic == kMagic ? 2 : 1;
  Sha256 hasher;
  hasher.update(magic);
  std::string prefix(4, '\0');
  bool saw_trailer = false;
  while (true) {
    DS_ASSIGN_OR_RETURN(size_t n, read_full(input, prefix));
    if (n == 0) break;
    if (n != 4) return corrupt("truncated frame length");
    if (saw_trailer) return corrupt("data after the trailer");
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i)
      length |= static_cast<uint32_t>(static_cast<uint8_t>(prefix[i])) << (8 * i);
    if (length > kMaxFrameBytes)
      return corrupt("frame length " + std::to_string(length) + " exceeds the limit");
    std::string body(length, '\0');
    DS_ASSIGN_OR_RETURN(size_t b, read_full(input, body));
    if (b != length) return corrupt("truncated frame");
    wire::BundleFrame frame;
    if (frame.ParseFromString(body) && frame.has_trailer()) {
      Digest expected = hasher.finish();
      const std::string& sum = frame.trailer().sha256();
      if (sum.size() != 32 || std::memcmp(sum.data(), expected.raw().data(), 32) != 0) {
        return corrupt("checksum mismatch");
      }
      digest_ = expected;
      signature_ = {};
      if (format_version_ >= 2 && frame.trailer().has_signature()) {
        const auto& in = frame.trailer().signature();
        if (in.scheme() == wire::BundleSignatureWire::X509)
          signature_.scheme = BundleSignature::Scheme::kX509;
        else if (in.scheme() == wire::BundleSignatureWire::ED25519)
          signature_.scheme = BundleSignature::Scheme::kEd25519;
        signature_.signature = in.signature();
        signature_.chain_der.assign(in.certificate_chain().begin(), in.certificate_chain().end());
        signature_.public_key = in.public_key();
      }
      saw_trailer = true;
      continue;
    }
    hasher.update(prefix);
    hasher.update(body);
  }
  if (!saw_trailer) return corrupt("no trailer (truncated)");

  // Now read the header for real.
  input_ = std::make_unique<BufferedSource>(*file_);
  std::string skip(kMagic.size(), '\0');
  DS_RETURN_IF_ERROR(read_exact(*input_, skip, context));
  wire::BundleFrame frame;
  DS_ASSIGN_OR_RETURN(bool ok, with_context(read_frame(frame), context));
  if (ok && frame.has_header_zstd()) {
    DS_ASSIGN_OR_RETURN(
        std::string plain,
        with_context(zstd_decompress(frame.header_zstd(), kMaxFrameBytes * 4), context));
    if (!header_.ParseFromString(plain)) return corrupt("the header is not a valid message");
  } else if (ok && frame.has_header()) {
    header_ = frame.header();
  } else {
    return corrupt("first frame is not the header");
  }
  if (header_.format_version() != format_version_) {
    return make_error(ErrorCode::kUnsupported, context + ": bundle format version " +
                                                   std::to_string(header_.format_version()) +
                                                   " is not supported");
  }
  return ok_status();
}

Result<wire::LayerBegin> BundleReader::next_layer() {
  if (!input_) return make_error(ErrorCode::kInternal, "bundle: verify() first");
  wire::BundleFrame frame;
  DS_ASSIGN_OR_RETURN(bool ok, read_frame(frame));
  if (!ok || !frame.has_layer_begin()) {
    return make_error(ErrorCode::kCorrupt,
                      "bundle " + path_.string() + ": expected the start of a layer");
  }
  layer_source_.ended = false;
  layer_source_.chunk.clear();
  layer_source_.pos = 0;
  current_layer_ = frame.layer_begin().target_index();
  return frame.layer_begin();
}

Result<size_t> BundleReader::LayerSource::read(std::span<char> buffer) {
  while (pos == chunk.size()) {
    if (ended) return size_t{0};
    wire::BundleFrame frame;
    DS_ASSIGN_OR_RETURN(bool ok, reader_.read_frame(frame));
    if (!ok) return make_error(ErrorCode::kCorrupt, "bundle: layer stream is truncated");
    if (frame.has_layer_end()) {
      ended = true;
      return size_t{0};
    }
    if (!frame.has_layer_data())
      return make_error(ErrorCode::kCorrupt, "bundle: unexpected frame inside a layer");
    chunk = std::move(*frame.mutable_layer_data());
    pos = 0;
  }
  size_t n = std::min(buffer.size(), chunk.size() - pos);
  std::memcpy(buffer.data(), chunk.data() + pos, n);
  pos += n;
  return n;
}

}  // namespace deltasync
