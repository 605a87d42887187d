// Who made a bundle: signatures over a bundle's checksum, and the trust that
// decides whether a site accepts them. OpenSSL is reached here only (EVP
// signing, X.509 chain verification); the rest of deltasync sees these types.
//
// Two kinds of signer:
//   - an X.509 certificate and its private key: the sender's mTLS identity
//     (deltasend's --cert/--key). The site trusts it when the certificate
//     chains to its CA (the receiver's --ca), is valid for client
//     authentication, and its CN or a DNS name is in allow-client (when that
//     list is set): the same rule as a network session.
//   - a bare ed25519 key (PEM), for sites without a PKI. The site trusts the
//     public keys it is given (several at once: key rotation).
// What is signed is kSignedContext followed by the 32-byte sha256 of every
// byte of the bundle before its trailer, so a signature cannot be lifted
// onto other data, and a changed bundle fails the checksum first.
//
// Thread safety: a BundleSigner or SignatureTrust is read-only after it is
// made and may be used from several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/digest.h"

namespace deltasync {

inline constexpr std::string_view kSignedContext = "deltasync bundle signature v1\n";

// A signature as it travels (BundleTrailer.signature).
struct BundleSignature {
  enum class Scheme { kNone, kX509, kEd25519 };
  Scheme scheme = Scheme::kNone;
  std::string signature;               // raw bytes
  std::vector<std::string> chain_der;  // kX509: signer certificate first, then intermediates
  std::string public_key;              // kEd25519: the raw 32-byte public key
};

class BundleSigner {
 public:
  // A certificate (PEM; further certificates in the file are intermediates)
  // and the matching private key (PEM). Errors name the file.
  static Result<std::unique_ptr<BundleSigner>> from_certificate(const std::string& cert_path,
                                                                const std::string& key_path);
  // An ed25519 private key (PEM, as `openssl genpkey -algorithm ed25519`).
  static Result<std::unique_ptr<BundleSigner>> from_ed25519_key(const std::string& key_path);
  ~BundleSigner();

  Result<BundleSignature> sign(const Digest& bundle_digest) const;
  // "CN=build-1 (issuer CN=deltasync CA)" or "ed25519 key 3f9a..", for messages.
  const std::string& describe() const { return description_; }

 private:
  struct Key;
  BundleSigner(std::unique_ptr<Key> key, BundleSignature::Scheme scheme,
               std::vector<std::string> chain_der, std::string public_key, std::string description);
  std::unique_ptr<Key> key_;
  BundleSignature::Scheme scheme_;
  std::vector<std::string> chain_der_;
  std::string public_key_;
  std::string description_;
};

// What a site accepts.
class SignatureTrust {
 public:
  // CA certificates (PEM) that vouch for signing certificates.
  Status add_ca_file(const std::string& path);
  // Names (CN or DNS subjectAltName) a certificate must carry; empty: any
  // certificate the CA vouches for.
  void set_allowed_names(std::vector<std::string> names) { allowed_names_ = std::move(names); }
  // An ed25519 public key (PEM, `openssl pkey -pubout`); repeatable.
  Status add_ed25519_public_key_file(const std::string& path);
  bool empty() const { return ca_pem_.empty() && ed25519_keys_.empty(); }
  // "CA /etc/deltasync/ca.pem (allow-client build-1), 2 ed25519 keys", for messages.
  std::string describe() const;

  // Checks `signature` over `bundle_digest`. On success returns who signed
  // ("CN=build-1"); otherwise kVerifyFailed saying who signed it and why
  // that is not trusted (unknown CA, expired, name not allowed, unknown key,
  // signature does not verify).
  Result<std::string> verify(const BundleSignature& signature, const Digest& bundle_digest) const;

 private:
  std::vector<std::pair<std::string, std::string>> ca_pem_;  // (path, PEM text)
  std::vector<std::string> allowed_names_;
  std::vector<std::pair<std::string, std::string>> ed25519_keys_;  // (path, raw 32 bytes)
};

// Makes an ed25519 key pair (PEM private key, PEM public key): for tests and
// `deltasend keygen`.
Result<std::pair<std::string, std::string>> generate_ed25519_pem();

}  // namespace deltasync
