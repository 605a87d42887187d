// Bundle signatures with OpenSSL 3 (signing.h). Keys of any type OpenSSL
// signs with work as certificates' keys (make-certs.sh makes EC P-256:
// ECDSA over SHA-256); ed25519 signs the message itself (no digest step).
// Certificate chains are checked with an X509_STORE of the site's CA, the
// signer's intermediates as untrusted, and the client-authentication
// purpose, so a server certificate or an expired one is refused as a TLS
// peer would be. OpenSSL's error queue is turned into messages here.
#include "common/crypto/signing.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "common/io/file.h"

namespace deltasync {

namespace {

std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using UniqueX509 = std::unique_ptr<X509, X509Free>;
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::unique_ptr<BIO, BioFree> memory_bio(std::string_view data) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string signed_message(const Digest& digest) {
  std::string message(kSignedContext);
  message.append(reinterpret_cast<const char*>(digest.raw().data()), digest.raw().size());
  return message;
}

std::string name_line(X509_NAME* name) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::string describe_certificate(X509* certificate) {
  return name_line(X509_get_subject_name(certificate)) + " (issuer " +
         name_line(X509_get_issuer_name(certificate)) + ")";
}

// CN and DNS subjectAltNames.
std::vector<std::string> certificate_names(X509* certificate) {
  std::vector<std::string> names;
  X509_NAME* subject = X509_get_subject_name(certificate);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                       static_cast<size_t>(ASN1_STRING_length(cn)));
  }
  auto* alt = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alt != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt, i);
      if (name->type != GEN_DNS) continue;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                         static_cast<size_t>(ASN1_STRING_length(name->d.dNSName)));
    }
    GENERAL_NAMES_free(alt);
  }
  return names;
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string short_hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < raw.size() && i < 8; ++i) {
    out.push_back(kHex[static_cast<unsigned char>(raw[i]) >> 4]);
    out.push_back(kHex[static_cast<unsigned char>(raw[i]) & 15]);
  }
  return out;
}

// Digest for EVP_DigestSign/Verify: none for ed25519 (it hashes itself).
const EVP_MD* digest_for(EVP_PKEY* key) {
  return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
}

Result<std::string> raw_public_key(EVP_PKEY* key, const std::string& what) {
  size_t length = 0;
  if (EVP_PKEY_get_raw_public_key(key, nullptr, &length) != 1 || length != 32)
    return make_error(ErrorCode::kInvalidArgument, what + ": not an ed25519 key");
  std::string raw(length, '\0');
  EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &length);
  return raw;
}

Status verify_with_key(EVP_PKEY* key, const BundleSignature& signature, const Digest& digest,
                       const std::string& signer) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string message = signed_message(digest);
  ERR_clear_error();
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(key), nullptr, key) != 1 ||
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature.signature.data()),
          signature.signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
          message.size()) != 1) {
    ERR_clear_error();
    return make_error(ErrorCode::kVerifyFailed,
                      "the signature by " + signer +
                          " does not verify: the bundle was changed after it was signed, or the "
                          "signature is damaged");
  }
  return ok_status();
}

}  // namespace

struct BundleSigner::Key {
  UniquePkey pkey;
};

BundleSigner::BundleSigner(std::unique_ptr<Key> key, BundleSignature::Scheme scheme,
                           std::vector<std::string> chain_der, std::string public_key,
                           std::string description)
    : key_(std::move(key)),
      scheme_(scheme),
      chain_der_(std::move(chain_der)),
      public_key_(std::move(public_key)),
      description_(std::move(description)) {}

BundleSigner::~BundleSigner() = default;

Result<std::unique_ptr<BundleSigner>> BundleSigner::from_certificate(const std::string& cert_path,
                                                                     const std::string& key_path) {
  DS_ASSIGN_OR_RETURN(std::string cert_pem, read_small_file(cert_path, 1 << 20));
  DS_ASSIGN_OR_RETURN(std::string key_pem, read_small_file(key_path, 1 << 20));
  ERR_clear_error();
  auto cert_bio = memory_bio(cert_pem);
  std::vector<std::string> chain;
  UniqueX509 leaf;
  while (X509* certificate = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    UniqueX509 owned(certificate);
    int length = i2d_X509(certificate, nullptr);
    std::string der(static_cast<size_t>(length), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509(certificate, &out);
    chain.push_back(std::move(der));
    if (!leaf) leaf = std::move(owned);
  }
  ERR_clear_error();
  if (!leaf)
    return make_error(ErrorCode::kInvalidArgument,
                      "certificate " + cert_path + ": no PEM certificate in the file");
  auto key_bio = memory_bio(key_pem);
  UniquePkey key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return make_error(
        ErrorCode::kInvalidArgument,
        "private key " + key_path + ": cannot read it as PEM (" + openssl_errors() + ")");
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    return make_error(ErrorCode::kInvalidArgument,
                      "private key " + key_path + " does not match certificate " + cert_path);
  }
  auto holder = std::make_unique<Key>();
  holder->pkey = std::move(key);
  return std::unique_ptr<BundleSigner>(
      new BundleSigner(std::move(holder), BundleSignature::Scheme::kX509, std::move(chain), "",
                       describe_certificate(leaf.get())));
}

Result<std::unique_ptr<BundleSigner>> BundleSigner::from_ed25519_key(const std::string& key_path) {
  DS_ASSIGN_OR_RETURN(std::string key_pem, read_small_file(key_path, 1 << 20));
  ERR_clear_error();
  auto bio = memory_bio(key_pem);
  UniquePkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return make_error(
        ErrorCode::kInvalidArgument,
        "signing key " + key_path + ": cannot read it as PEM (" + openssl_errors() + ")");
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return make_error(
        ErrorCode::kInvalidArgument,
        "signing key " + key_path +
            ": not an ed25519 key (make one with: openssl genpkey -algorithm ed25519)");
  DS_ASSIGN_OR_RETURN(std::string public_key, raw_public_key(key.get(), "signing key " + key_path));
  auto holder = std::make_unique<Key>();
  holder->pkey = std::move(key);
  std::string description = "ed25519 key " + short_hex(public_key);
  return std::unique_ptr<BundleSigner>(new BundleSigner(std::move(holder),
                                                        BundleSignature::Scheme::kEd25519, {},
                                                        std::move(public_key), description));
}

Result<BundleSignature> BundleSigner::sign(const Digest& bundle_digest) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string message = signed_message(bundle_digest);
  ERR_clear_error();
  size_t length = 0;
  EVP_PKEY* key = key_->pkey.get();
  if (EVP_DigestSignInit(ctx.get(), nullptr, digest_for(key), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    return make_error(ErrorCode::kInternal, "signing the bundle: " + openssl_errors());
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    return make_error(ErrorCode::kInternal, "signing the bundle: " + openssl_errors());
  signature.resize(length);
  BundleSignature out;
  out.scheme = scheme_;
  out.signature = std::move(signature);
  out.chain_der = chain_der_;
  out.public_key = public_key_;
  return out;
}

Status SignatureTrust::add_ca_file(const std::string& path) {
  DS_ASSIGN_OR_RETURN(std::string pem, read_small_file(path, 4 << 20));
  auto bio = memory_bio(pem);
  UniqueX509 first(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!first)
    return make_error(ErrorCode::kInvalidArgument,
                      "CA certificates " + path + ": no PEM certificate");
  ca_pem_.emplace_back(path, std::move(pem));
  return ok_status();
}

Status SignatureTrust::add_ed25519_public_key_file(const std::string& path) {
  DS_ASSIGN_OR_RETURN(std::string pem, read_small_file(path, 1 << 20));
  auto bio = memory_bio(pem);
  UniquePkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return make_error(ErrorCode::kInvalidArgument,
                      "trusted key " + path +
                          ": not an ed25519 public key in PEM (openssl pkey -in KEY -pubout)");
  DS_ASSIGN_OR_RETURN(std::string raw, raw_public_key(key.get(), "trusted key " + path));
  ed25519_keys_.emplace_back(path, std::move(raw));
  return ok_status();
}

std::string SignatureTrust::describe() const {
  std::string out;
  for (const auto& [path, pem] : ca_pem_) {
    if (!out.empty()) out += ", ";
    out += "CA " + path;
  }
  if (!ca_pem_.empty() && !allowed_names_.empty()) {
    out += " (allow-client";
    for (const auto& name : allowed_names_) out += " " + name;
    out += ")";
  }
  if (!ed25519_keys_.empty()) {
    if (!out.empty()) out += ", ";
    out += std::to_string(ed25519_keys_.size()) + " ed25519 key" +
           (ed25519_keys_.size() == 1 ? "" : "s");
  }
  return out.empty() ? "nothing" : out;
}

Result<std::string> SignatureTrust::verify(const BundleSignature& signature,
                                           const Digest& bundle_digest) const {
  switch (signature.scheme) {
    case BundleSignature::Scheme::kNone:
      return make_error(ErrorCode::kVerifyFailed, "the bundle is not signed");
    case BundleSignature::Scheme::kEd25519: {
      std::string signer = "ed25519 key " + short_hex(signature.public_key);
      auto trusted = std::find_if(ed25519_keys_.begin(), ed25519_keys_.end(),
                                  [&](const auto& k) { return k.second == signature.public_key; });
      if (trusted == ed25519_keys_.end())
        return make_error(
            ErrorCode::kVerifyFailed,
            "signed by " + signer + ", which is not among the trusted keys (" + describe() + ")");
      UniquePkey key(EVP_PKEY_new_raw_public_key(
          EVP_PKEY_ED25519, nullptr,
          reinterpret_cast<const unsigned char*>(signature.public_key.data()),
          signature.public_key.size()));
      if (!key) return make_error(ErrorCode::kVerifyFailed, "signed by a malformed ed25519 key");
      DS_RETURN_IF_ERROR(verify_with_key(key.get(), signature, bundle_digest, signer));
      return signer + " (" + trusted->first + ")";
    }
    case BundleSignature::Scheme::kX509:
      break;
  }
  if (signature.chain_der.empty())
    return make_error(ErrorCode::kVerifyFailed, "the signature carries no certificate");
  std::vector<UniqueX509> chain;
  for (const auto& der : signature.chain_der) {
    const auto* in = reinterpret_cast<const unsigned char*>(der.data());
    X509* certificate = d2i_X509(nullptr, &in, static_cast<long>(der.size()));
    if (certificate == nullptr) {
      ERR_clear_error();
      return make_error(ErrorCode::kVerifyFailed, "the signer's certificate is malformed");
    }
    chain.emplace_back(certificate);
  }
  X509* leaf = chain.front().get();
  std::string signer = describe_certificate(leaf);
  if (ca_pem_.empty())
    return make_error(ErrorCode::kVerifyFailed,
                      "signed by certificate " + signer +
                          ", but no CA is configured to check it (give --ca, or trust an ed25519 "
                          "key)");
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const auto& [path, pem] : ca_pem_) {
    auto bio = memory_bio(pem);
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store.get(), ca);
      X509_free(ca);
    }
    ERR_clear_error();
  }
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), X509_dup(chain[i].get()));
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1)
    return make_error(ErrorCode::kInternal,
                      "checking the signer's certificate: " + openssl_errors());
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) != 1) {
    int error = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return make_error(ErrorCode::kVerifyFailed,
                      "signed by certificate " + signer + ", which " + describe() +
                          " does not vouch for: " + X509_verify_cert_error_string(error));
  }
  if (!allowed_names_.empty()) {
    auto names = certificate_names(leaf);
    bool allowed = std::any_of(allowed_names_.begin(), allowed_names_.end(), [&](const auto& a) {
      return std::any_of(names.begin(), names.end(), [&](const auto& n) { return iequal(a, n); });
    });
    if (!allowed) {
      std::string listed;
      for (const auto& name : allowed_names_) listed += (listed.empty() ? "" : ", ") + name;
      return make_error(ErrorCode::kVerifyFailed, "signed by certificate " + signer +
                                                      ", whose names are not in allow-client (" +
                                                      listed + ")");
    }
  }
  UniquePkey key(X509_get_pubkey(leaf));
  if (!key) return make_error(ErrorCode::kVerifyFailed, "the signer's certificate has no key");
  DS_RETURN_IF_ERROR(verify_with_key(key.get(), signature, bundle_digest, "certificate " + signer));
  return "certificate " + signer;
}

Result<std::pair<std::string, std::string>> generate_ed25519_pem() {
  ERR_clear_error();
  UniquePkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return make_error(ErrorCode::kInternal, "ed25519 key generation: " + openssl_errors());
  auto to_pem = [](auto write) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    write(bio.get());
    char* data = nullptr;
    long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(length));
  };
  std::string private_pem = to_pem([&](BIO* b) {
    PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  std::string public_pem = to_pem([&](BIO* b) { PEM_write_bio_PUBKEY(b, key.get()); });
  return std::make_pair(private_pem, public_pem);
}

}  // namespace deltasync
