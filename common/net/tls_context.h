// OpenSSL behind the transport (internal to common/net/): TLS contexts made
// from a TlsIdentity, certificate names, and the one place where OpenSSL
// error codes become words for our Errors.
//
// Contexts are TLS 1.3 only, key exchange X25519 (then P-256), and
// verification of the peer required (servers fail a handshake without a
// client certificate). Servers keep sessions in memory and issue one ticket
// per handshake naming one, good once, for kSessionLifetimeSeconds, while the
// context lives; clients may resume with it, which spares both certificates
// on the link. Passphrase-protected keys fail to load instead
// of prompting on a terminal.
//
// Thread safety: functions are reentrant (OpenSSL's error queue is per
// thread). A context may be shared by channels on several threads once made
// (it is not changed afterwards).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include "common/net/tls_options.h"
#include "common/util/result.h"

namespace deltasync::net_detail {

enum class Role { kClient, kServer };

// How long a session ticket may be resumed: long enough to span a day of
// updates, short enough that a revoked sender is out within a day even
// without a receiver restart.
constexpr long kSessionLifetimeSeconds = 12 * 3600;
// Sessions a receiver remembers (a few KB each; the oldest go first).
constexpr long kSessionCacheEntries = 1024;

// Makes the context for one end: the CA file to verify the peer with, and
// (with present_certificate) this end's certificate and matching key.
// Errors name the file: "private key /etc/x.key does not match certificate
// /etc/x.pem (...)". present_certificate=false exists for tests only.
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(Role role,
                                                                    const TlsIdentity& identity,
                                                                    bool present_certificate);

// Drains this thread's OpenSSL error queue into "reason (detail); reason".
std::string take_openssl_errors();

// The names in a certificate, for peer_name(), allowed-name checks and
// messages.
struct CertificateNames {
  std::string common_name;       // subject CN ("" if none)
  std::vector<std::string> dns;  // DNS subjectAltNames
  std::vector<std::string> ips;  // IP subjectAltNames, as text
  std::string subject, issuer;   // RFC 2253 one-liners, e.g. "CN=alice"
  // CN, else the first DNS name, else the subject.
  std::string display_name() const;
  // "DNS:a, IP:1.2.3.4" or the CN alone.
  std::string list() const;
};
CertificateNames certificate_names(X509* certificate);

// The words for an error code from an asio TLS stream ("certificate verify
// failed", "connection reset by peer").
std::string describe_error(const boost::system::error_code& ec);
// The TLS alert the peer sent, if that is what `ec` reports (e.g. 48 for
// "tlsv1 alert unknown ca").
std::optional<int> received_alert(const boost::system::error_code& ec);
// EOF, reset, broken pipe, TLS stream truncated: the peer went away.
bool is_connection_closed(const boost::system::error_code& ec);
// The handshake failed because the client sent no certificate.
bool is_missing_peer_certificate(const boost::system::error_code& ec);
// The handshake failed on the TLS version or the peer does not speak TLS.
bool is_protocol_mismatch(const boost::system::error_code& ec);

}  // namespace deltasync::net_detail
