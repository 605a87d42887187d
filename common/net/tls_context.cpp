// TLS contexts, certificate names and OpenSSL error words; see tls_context.h.
#include "common/net/tls_context.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <exception>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace deltasync::net_detail {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// The private key must not be encrypted: OpenSSL would otherwise ask for a
// passphrase on the terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

// kNotFound / kIo with the file named, before OpenSSL gets a chance to say
// "system lib" about it.
Status check_readable(const std::filesystem::path& path, std::string_view what) {
  if (path.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "no " + std::string(what) +
                                                       " file given (TLS needs it; there is no "
                                                       "plaintext mode)");
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return std::unexpected(errno_error(errno, std::string(what) + " " + path.string()));
  }
  return ok_status();
}

Error load_error(std::string message) {
  std::string detail = take_openssl_errors();
  if (!detail.empty()) message += " (" + detail + ")";
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

std::string name_text(X509_NAME* name) {
  if (name == nullptr) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  std::string text;
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    if (size > 0) text.assign(data, static_cast<size_t>(size));
  }
  BIO_free(bio);
  return text;
}

std::string asn1_text(const ASN1_STRING* value) {
  unsigned char* utf8 = nullptr;
  int size = ASN1_STRING_to_UTF8(&utf8, value);
  if (size < 0) return {};
  std::string text(reinterpret_cast<const char*>(utf8), static_cast<size_t>(size));
  OPENSSL_free(utf8);
  return text;
}

std::optional<unsigned long> ssl_error_value(const error_code& ec) {
  if (ec.category() != asio::error::get_ssl_category()) return std::nullopt;
  return static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
}

bool has_ssl_reason(const error_code& ec, int reason) {
  auto value = ssl_error_value(ec);
  return value && ERR_GET_LIB(*value) == ERR_LIB_SSL && ERR_GET_REASON(*value) == reason;
}

}  // namespace

std::string take_openssl_errors() {
  std::string text;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    const char* reason = ERR_reason_error_string(code);
    std::string item;
    if (reason != nullptr) {
      item = reason;
    } else {
      char buffer[256];
      ERR_error_string_n(code, buffer, sizeof buffer);
      item = buffer;
    }
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      item += " (" + std::string(data) + ")";
    }
    // OpenSSL often stacks the same reason from several layers.
    if (text.find(item) != std::string::npos) continue;
    if (!text.empty()) text += "; ";
    text += item;
  }
  return text;
}

Result<std::shared_ptr<asio::ssl::context>> make_tls_context(Role role, const TlsIdentity& identity,
                                                             bool present_certificate) {
  ERR_clear_error();
  std::shared_ptr<asio::ssl::context> context;
  try {
    context = std::make_shared<asio::ssl::context>(
        role == Role::kClient ? asio::ssl::context::tls_client : asio::ssl::context::tls_server);
  } catch (const std::exception& e) {
    return std::unexpected(load_error(std::string("cannot make a TLS context: ") + e.what()));
  }
  SSL_CTX* ctx = context->native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return std::unexpected(load_error("this OpenSSL cannot do TLS 1.3"));
  }
  // Resumption: the server keeps each session in its in-memory cache and
  // gives the client one ticket per handshake naming it (TLS 1.3 "stateful"
  // tickets, SSL_OP_NO_TICKET: a stateless ticket would carry the whole
  // session, client certificate included, back in every ClientHello). A
  // ticket is good for one resumption, until kSessionLifetimeSeconds or a
  // restart of the receiver. The client keeps what it was given (the caller
  // stores it, see FrameChannel::resumption_ticket()) and offers it next
  // time; a resumed handshake carries no certificates. The session id
  // context binds sessions to this program.
  SSL_CTX_set_timeout(ctx, kSessionLifetimeSeconds);
  if (role == Role::kServer) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, kSessionCacheEntries);
    static const unsigned char kSessionContext[] = "deltasync";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  }
  SSL_CTX_set_default_passwd_cb(ctx, &no_passphrase);
  if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1) {
    return std::unexpected(load_error("this OpenSSL has neither X25519 nor P-256"));
  }

  if (present_certificate) {
    const std::string certificate = identity.certificate.string();
    const std::string key = identity.private_key.string();
    DS_RETURN_IF_ERROR(check_readable(identity.certificate, "certificate"));
    DS_RETURN_IF_ERROR(check_readable(identity.private_key, "private key"));
    if (SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) != 1) {
      return std::unexpected(
          load_error("certificate " + certificate + ": cannot load it as a PEM certificate"));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      std::string detail = take_openssl_errors();
      // A wrong key type for the certificate is reported here already.
      bool mismatch = detail.find("values mismatch") != std::string::npos ||
                      detail.find("does not match") != std::string::npos;
      return make_error(ErrorCode::kInvalidArgument,
                        mismatch
                            ? "private key " + key + " does not match certificate " + certificate +
                                  " (" + detail + ")"
                            : "private key " + key +
                                  ": cannot load it as an unencrypted PEM key (" + detail + ")");
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return std::unexpected(
          load_error("private key " + key + " does not match certificate " + certificate));
    }
  }

  const std::string ca = identity.ca_certificates.string();
  DS_RETURN_IF_ERROR(check_readable(identity.ca_certificates, "CA certificates"));
  if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) {
    return std::unexpected(
        load_error("CA certificates " + ca + ": cannot load them as PEM certificates"));
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (store == nullptr || sk_X509_OBJECT_num(X509_STORE_get0_objects(store)) == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "CA certificates " + ca + ": the file holds no certificate");
  }
  int mode = SSL_VERIFY_PEER;
  if (role == Role::kServer) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  ERR_clear_error();
  return context;
}

CertificateNames certificate_names(X509* certificate) {
  CertificateNames names;
  if (certificate == nullptr) return names;
  X509_NAME* subject = X509_get_subject_name(certificate);
  names.subject = name_text(subject);
  names.issuer = name_text(X509_get_issuer_name(certificate));
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    names.common_name = asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
  }
  auto* alt_names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (alt_names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names, i);
      if (name->type == GEN_DNS) {
        names.dns.push_back(asn1_text(name->d.dNSName));
      } else if (name->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        int family = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : 0;
        if (family != 0 && inet_ntop(family, ip->data, text, sizeof text) != nullptr) {
          names.ips.emplace_back(text);
        }
      }
    }
    GENERAL_NAMES_free(alt_names);
  }
  return names;
}

std::string CertificateNames::display_name() const {
  if (!common_name.empty()) return common_name;
  if (!dns.empty()) return dns.front();
  return subject;
}

std::string CertificateNames::list() const {
  std::string text;
  for (const auto& name : dns) text += (text.empty() ? "DNS:" : ", DNS:") + name;
  for (const auto& ip : ips) text += (text.empty() ? "IP:" : ", IP:") + ip;
  if (text.empty()) text = "only CN=" + common_name;
  return text;
}

std::string describe_error(const error_code& ec) {
  if (auto value = ssl_error_value(ec)) {
    const char* reason = ERR_reason_error_string(*value);
    if (reason != nullptr) return reason;
    char buffer[256];
    ERR_error_string_n(*value, buffer, sizeof buffer);
    return buffer;
  }
  if (ec == asio::ssl::error::stream_truncated) return "connection closed by peer";
  std::string text = ec.message();
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] + 32);
  return text;
}

std::optional<int> received_alert(const error_code& ec) {
  auto value = ssl_error_value(ec);
  if (!value || ERR_GET_LIB(*value) != ERR_LIB_SSL) return std::nullopt;
  int reason = ERR_GET_REASON(*value);
  if (reason < SSL_AD_REASON_OFFSET || reason >= SSL_AD_REASON_OFFSET + 256) return std::nullopt;
  return reason - SSL_AD_REASON_OFFSET;
}

bool is_connection_closed(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == asio::error::not_connected ||
         has_ssl_reason(ec, SSL_R_UNEXPECTED_EOF_WHILE_READING);
}

bool is_missing_peer_certificate(const error_code& ec) {
  return has_ssl_reason(ec, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
}

bool is_protocol_mismatch(const error_code& ec) {
  return has_ssl_reason(ec, SSL_R_WRONG_VERSION_NUMBER) ||
         has_ssl_reason(ec, SSL_R_UNSUPPORTED_PROTOCOL) ||
         has_ssl_reason(ec, SSL_R_VERSION_TOO_LOW) || has_ssl_reason(ec, SSL_R_HTTP_REQUEST) ||
         has_ssl_reason(ec, SSL_R_NO_PROTOCOLS_AVAILABLE) ||
         has_ssl_reason(ec, SSL_R_PACKET_LENGTH_TOO_LONG) ||
         has_ssl_reason(ec, SSL_R_RECORD_LENGTH_MISMATCH);
}

}  // namespace deltasync::net_detail
