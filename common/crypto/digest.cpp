#include "common/crypto/digest.h"

#include <openssl/evp.h>

#include <cstring>

namespace deltasync {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

Result<Digest> Digest::parse(std::string_view text, bool allow_bare) {
  std::string_view hex = text;
  if (hex.starts_with("sha256:")) {
    hex.remove_prefix(7);
  } else if (!allow_bare) {
    return make_error(
        ErrorCode::kInvalidArgument,
        "digest '" + std::string(text) + "' is not of the form sha256:<64 hex digits>");
  }
  if (hex.size() != 64) {
    return make_error(ErrorCode::kInvalidArgument,
                      "digest '" + std::string(text) + "' does not have 64 hex digits");
  }
  std::array<uint8_t, 32> raw{};
  for (size_t i = 0; i < 32; ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "digest '" + std::string(text) + "' has a character that is not lower-case hex");
    }
    raw[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return from_raw(raw);
}

Digest Digest::of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

std::string Digest::hex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < 32; ++i) {
    out[2 * i] = kDigits[raw_[i] >> 4];
    out[2 * i + 1] = kDigits[raw_[i] & 15];
  }
  return out;
}

bool Digest::is_zero() const {
  for (uint8_t b : raw_)
    if (b != 0) return false;
  return true;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    // Allocation failure of a few bytes inside OpenSSL: nothing sensible to do.
    std::abort();
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(impl_->ctx);
}

void Sha256::update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

Digest Sha256::finish() {
  std::array<uint8_t, 32> raw{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, raw.data(), &len);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return Digest::from_raw(raw);
}

Result<size_t> HashingSource::read(std::span<char> buffer) {
  DS_ASSIGN_OR_RETURN(size_t got, inner_.read(buffer));
  hasher_.update(std::string_view(buffer.data(), got));
  bytes_ += got;
  return got;
}

Status HashingSink::write(std::string_view data) {
  hasher_.update(data);
  bytes_ += data.size();
  return next_ ? next_->write(data) : ok_status();
}

VerifyingSource::VerifyingSource(std::unique_ptr<ByteSource> inner, Digest expected,
                                 std::string what)
    : inner_(std::move(inner)), expected_(expected), what_(std::move(what)) {}

Result<size_t> VerifyingSource::read(std::span<char> buffer) {
  if (done_) return size_t{0};
  DS_ASSIGN_OR_RETURN(size_t got, inner_->read(buffer));
  if (got > 0) {
    hasher_.update(std::string_view(buffer.data(), got));
    return got;
  }
  done_ = true;
  Digest actual = hasher_.finish();
  if (actual != expected_) {
    return make_error(ErrorCode::kVerifyFailed, what_ + ": content hashes to " + actual.str() +
                                                    ", expected " + expected_.str() +
                                                    " (the data is corrupt or was altered)");
  }
  return size_t{0};
}

}  // namespace deltasync
