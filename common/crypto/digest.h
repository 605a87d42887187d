// SHA-256 hashing (OpenSSL) and the "sha256:<hex>" digests that name layers,
// configs and file contents.
//
// Sha256 is an incremental hasher; HashingSource/HashingSink hash what flows
// through them; VerifyingSource fails at end of stream when the content does
// not match the expected digest, which is how every layer we read or rebuild
// is checked against its diff_id without a second pass.
//
// Thread safety: none; one owner per object.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/io/stream.h"

namespace deltasync {

// A sha256 digest. Compares and orders by value; prints as "sha256:<hex>".
class Digest {
 public:
  Digest() = default;
  static Digest from_raw(const std::array<uint8_t, 32>& raw) {
    Digest d;
    d.raw_ = raw;
    return d;
  }
  // Accepts "sha256:<64 hex>" (or bare hex when allow_bare).
  static Result<Digest> parse(std::string_view text, bool allow_bare = false);
  static Digest of(std::string_view data);

  std::string hex() const;
  std::string str() const { return "sha256:" + hex(); }
  std::string short_str() const { return hex().substr(0, 12); }
  const std::array<uint8_t, 32>& raw() const { return raw_; }
  bool is_zero() const;

  auto operator<=>(const Digest&) const = default;

 private:
  std::array<uint8_t, 32> raw_{};
};

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    static_assert(sizeof(h) <= 32);
    __builtin_memcpy(&h, d.raw().data(), sizeof(h));
    return h;
  }
};

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  Digest finish();  // resets for reuse

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class HashingSource final : public ByteSource {
 public:
  explicit HashingSource(ByteSource& inner) : inner_(inner) {}
  Result<size_t> read(std::span<char> buffer) override;
  Digest finish() { return hasher_.finish(); }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSource& inner_;
  Sha256 hasher_;
  uint64_t bytes_ = 0;
};

class HashingSink final : public ByteSink {
 public:
  HashingSink() = default;
  explicit HashingSink(ByteSink* next) : next_(next) {}
  Status write(std::string_view data) override;
  Status finish() override { return next_ ? next_->finish() : ok_status(); }
  Digest digest() { return hasher_.finish(); }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink* next_ = nullptr;
  Sha256 hasher_;
  uint64_t bytes_ = 0;
};

// Passes bytes through; at end of stream returns kVerifyFailed unless they
// hash to `expected`. `what` names the content in the error message.
class VerifyingSource final : public ByteSource {
 public:
  VerifyingSource(std::unique_ptr<ByteSource> inner, Digest expected, std::string what);
  Result<size_t> read(std::span<char> buffer) override;

 private:
  std::unique_ptr<ByteSource> inner_;
  Digest expected_;
  std::string what_;
  Sha256 hasher_;
  bool done_ = false;
};

}  // namespace deltasync
