// FrameChannel and connect_channel(); see frame_channel.h and, for how the
// deadlines work, channel_impl.h.
#include "common/net/frame_channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <exception>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "common/net/channel_impl.h"
#include "common/net/net_testing.h"

namespace deltasync {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using net_detail::certificate_names;
using net_detail::describe_error;
using net_detail::duration_text;
using net_detail::Role;
using net_detail::tcp;

namespace net_detail {

std::string endpoint_text(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

std::string duration_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + " s";
  return std::to_string(duration.count()) + " ms";
}

}  // namespace net_detail

namespace {

// Frames up to this size are copied behind their prefix and written at
// once (one run of TLS records); larger ones go as prefix + payload (one
// extra 22-byte record, nothing next to the payload).
constexpr size_t kCoalesceLimit = 64 * 1024;
// How long a client whose send failed waits for the receiver's TLS alert or
// its last frames.
constexpr std::chrono::milliseconds kAlertProbe{1000};
// Frames read after a failed send, looking for the peer's last one.
constexpr int kLastFramesRead = 64;
// TCP keepalive: a silently vanished peer is noticed after about 2 minutes
// even while this end only waits (the io_timeout bounds each call anyway).
constexpr int kKeepaliveIdleSeconds = 60;
constexpr int kKeepaliveIntervalSeconds = 15;
constexpr int kKeepaliveProbes = 4;

// The u32 big-endian length prefix of a frame.
uint32_t frame_size(const std::array<unsigned char, 4>& prefix) {
  return (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) | (uint32_t{prefix[2]} << 8) |
         uint32_t{prefix[3]};
}

bool ascii_iequal(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return lower(x) == lower(y);
  });
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text;
}

std::string host_port(const std::string& host, uint16_t port) {
  bool bare_v6 = host.find(':') != std::string::npos && !host.starts_with("[");
  return (bare_v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool is_chain_error(int error) {
  switch (error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return true;
    default:
      return false;
  }
}

bool is_certificate_alert(int alert) {
  switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_DECRYPT_ERROR:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---- FrameChannel::Impl ---------------------------------------------------------

FrameChannel::Impl::Impl(std::shared_ptr<ssl::context> tls_context,
                         const ChannelLimits& channel_limits, Role channel_role,
                         std::string peer_label)
    : tls(std::move(tls_context)),
      limits(channel_limits),
      role(channel_role),
      label(std::move(peer_label)),
      stream(io, *tls),
      timer(io) {}

FrameChannel::Impl::~Impl() {
  error_code ignored;
  stream.next_layer().socket().close(ignored);
}

template <class Start>
error_code FrameChannel::Impl::run(Start&& start, bool abandon_on_timeout) {
  struct State {
    bool done = false;
    error_code ec;
  };
  auto state = std::make_shared<State>();
  timed_out_ = false;
  timer.expires_at(deadline_);
  timer.async_wait([this, state](const error_code& ec) {
    if (ec || state->done) return;  // cancelled: the operation finished first
    timed_out_ = true;
    abort_io();
  });
  start([this, state](const error_code& ec, auto&&...) {
    state->done = true;
    state->ec = ec;
    timer.cancel();
  });
  io.restart();
  while (!state->done && !(abandon_on_timeout && timed_out_)) {
    if (io.run_one() == 0) break;  // out of work: cannot happen while an operation is pending
  }
  timer.cancel();
  io.restart();
  io.poll();  // the timer's cancellation, a posted shutdown
  if (!state->done) return timed_out_ ? asio::error::timed_out : asio::error::operation_aborted;
  return state->ec;
}

void FrameChannel::Impl::abort_io() {
  error_code ignored;
  if (resolver) resolver->cancel();
  stream.next_layer().socket().close(ignored);
}

void FrameChannel::Impl::start_deadline(std::chrono::milliseconds timeout) {
  deadline_ = std::chrono::steady_clock::now() + timeout;
  deadline_length_ = timeout;
}

void FrameChannel::Impl::shutdown() {
  cancelled_.store(true);
  asio::post(io, [this] { abort_io(); });
}

Status FrameChannel::Impl::usable() const {
  if (cancelled_.load()) {
    return make_error(ErrorCode::kCancelled, label + ": the channel was shut down");
  }
  if (failed_) return std::unexpected(*failed_);
  return ok_status();
}

std::unexpected<Error> FrameChannel::Impl::fail(Error error) {
  failed_ = error;
  abort_io();
  return std::unexpected(std::move(error));
}

void FrameChannel::Impl::set_socket_options() {
  tcp::socket& socket = stream.next_layer().socket();
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  socket.set_option(asio::socket_base::keep_alive(true), ignored);
  int fd = socket.native_handle();
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepaliveIdleSeconds, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepaliveIntervalSeconds, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepaliveProbes, sizeof(int));
}

void FrameChannel::Impl::record_peer() {
  error_code ec;
  tcp::endpoint endpoint = stream.next_layer().socket().remote_endpoint(ec);
  peer_address = ec ? std::string("unknown address") : net_detail::endpoint_text(endpoint);
}

namespace {

// The certificate's CN or one of its DNS names is listed (ASCII case-insensitive).
bool name_allowed(const net_detail::CertificateNames& names,
                  const std::vector<std::string>& allowed_names) {
  return std::any_of(allowed_names.begin(), allowed_names.end(), [&](const auto& name) {
    if (!names.common_name.empty() && ascii_iequal(name, names.common_name)) return true;
    return std::any_of(names.dns.begin(), names.dns.end(),
                       [&](const auto& dns) { return ascii_iequal(name, dns); });
  });
}

}  // namespace

bool FrameChannel::Impl::on_verify(bool preverified, X509_STORE_CTX* context,
                                   const std::vector<std::string>* allowed_names) {
  X509* certificate = X509_STORE_CTX_get_current_cert(context);
  int depth = X509_STORE_CTX_get_error_depth(context);
  if (!preverified) {
    if (verify_.error == X509_V_OK) {
      verify_.error = X509_STORE_CTX_get_error(context);
      verify_.depth = depth;
      verify_.certificate = certificate_names(certificate);
    }
    return false;
  }
  if (depth == 0 && allowed_names != nullptr && !allowed_names->empty()) {
    net_detail::CertificateNames names = certificate_names(certificate);
    if (!name_allowed(names, *allowed_names)) {
      verify_.error = X509_V_ERR_CERT_REJECTED;
      verify_.depth = 0;
      verify_.certificate = std::move(names);
      verify_.name_not_allowed = true;
      verify_.allowed = join(*allowed_names);
      X509_STORE_CTX_set_error(context, X509_V_ERR_CERT_REJECTED);
      return false;
    }
  }
  return true;
}

Error FrameChannel::Impl::alert_error(int alert, const error_code& ec,
                                      std::string_view step) const {
  std::string where = label + ": " + std::string(step) + ": ";
  std::string reason = describe_error(ec);
  if (role == Role::kClient) {
    if (alert == SSL_AD_CERTIFICATE_REQUIRED) {
      return Error(ErrorCode::kVerifyFailed,
                   where + "the receiver requires a client certificate (" + reason +
                       "): give this sender's certificate and key (--cert, --key)");
    }
    if (alert == SSL_AD_UNKNOWN_CA || alert == SSL_AD_DECRYPT_ERROR) {
      return Error(ErrorCode::kVerifyFailed,
                   where + "the receiver refused this sender's certificate (" + reason +
                       "): it is not signed by the CA the receiver trusts; use a sender "
                       "certificate made with the receiver's CA");
    }
    if (is_certificate_alert(alert)) {
      return Error(ErrorCode::kVerifyFailed,
                   where + "the receiver refused this sender's certificate (" + reason +
                       "): is this sender's name allowed on the receiver (allow-client), and "
                       "is the certificate valid? The receiver's log says why");
    }
    if (alert == SSL_AD_PROTOCOL_VERSION) {
      return Error(ErrorCode::kProtocol,
                   where + reason + " (the receiver does not speak TLS 1.3; is it deltarecvd?)");
    }
    return Error(ErrorCode::kProtocol,
                 where + "the receiver ended the connection (" + reason + ")");
  }
  if (is_certificate_alert(alert)) {
    return Error(ErrorCode::kVerifyFailed,
                 where + "the sender rejected this receiver's certificate (" + reason +
                     "): is the sender's --ca the CA that signed it, and does it name the host "
                     "the sender connects to?");
  }
  if (alert == SSL_AD_PROTOCOL_VERSION) {
    return Error(ErrorCode::kProtocol, where + reason + " (the sender does not speak TLS 1.3)");
  }
  return Error(ErrorCode::kProtocol, where + "the sender ended the connection (" + reason + ")");
}

Error FrameChannel::Impl::io_error(const error_code& ec, std::string_view step) {
  std::string where = label + ": " + std::string(step) + ": ";
  if (cancelled_.load()) {
    return Error(ErrorCode::kCancelled, where + "cancelled (the channel was shut down)");
  }
  if (timed_out_) {
    return Error(ErrorCode::kTimeout, where + "not finished within " +
                                          duration_text(deadline_length_) +
                                          " (the peer is too slow, stalled or unreachable)");
  }
  if (auto alert = net_detail::received_alert(ec)) return alert_error(*alert, ec, step);
  if (net_detail::is_connection_closed(ec)) {
    return Error(ErrorCode::kUnavailable, where + "connection closed by peer");
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    return Error(ErrorCode::kProtocol, where + "TLS error: " + describe_error(ec));
  }
  return Error(ErrorCode::kUnavailable, where + describe_error(ec));
}

Error FrameChannel::Impl::send_error(const error_code& ec, std::string_view step) {
  if (role == Role::kClient && !cancelled_.load() && !timed_out_ &&
      net_detail::is_connection_closed(ec) && !net_detail::received_alert(ec)) {
    // TLS 1.3: the receiver checks our certificate after our handshake has
    // finished; if it refused it, its alert is waiting to be read. A receiver
    // that ended the session sent why (a SessionError) before it closed: keep
    // the last frame waiting for receive_frame().
    start_deadline(std::min(kAlertProbe, limits.io_timeout));
    error_code probe;
    for (int frames = 0; frames < kLastFramesRead && !probe; ++frames) {
      std::array<unsigned char, 4> prefix{};
      probe = run([&](auto handler) {
        asio::async_read(stream, asio::buffer(prefix), std::move(handler));
      });
      if (probe || frame_size(prefix) > limits.max_frame_bytes) break;
      std::string payload(frame_size(prefix), '\0');
      probe = run([&](auto handler) {
        asio::async_read(stream, asio::buffer(payload), std::move(handler));
      });
      if (!probe) last_frame_ = std::move(payload);
    }
    if (net_detail::received_alert(probe)) return io_error(probe, step);
    timed_out_ = false;
  }
  return io_error(ec, step);
}

Error FrameChannel::Impl::handshake_error(const error_code& ec) {
  const bool client = role == Role::kClient;
  if (cancelled_.load()) {
    return Error(ErrorCode::kCancelled, label + ": TLS handshake: cancelled (shut down)");
  }
  if (timed_out_) {
    return Error(ErrorCode::kTimeout, label +
                                          (client ? ": TLS handshake failed: " : ": refused: ") +
                                          "the handshake did not finish within " +
                                          duration_text(limits.handshake_timeout) +
                                          (client ? " (is that port a deltasync receiver?)"
                                                  : " (a stalled, very slow or non-TLS client)"));
  }
  const std::string where = label + (client ? ": TLS handshake failed: " : ": refused: ");
  if (verify_.error != X509_V_OK) {
    const auto& certificate = verify_.certificate;
    if (verify_.name_not_allowed) {
      return Error(ErrorCode::kVerifyFailed,
                   where + "certificate name '" + certificate.display_name() + "' (" +
                       certificate.list() + ") is not allowed (allowed: " + verify_.allowed + ")");
    }
    std::string message = where + "certificate verify failed (" +
                          X509_verify_cert_error_string(verify_.error) + ", certificate '" +
                          certificate.subject + "'";
    if (!certificate.issuer.empty()) message += " issued by '" + certificate.issuer + "'";
    message += ")";
    int error = verify_.error;
    if (error == X509_V_ERR_HOSTNAME_MISMATCH || error == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      message += ": the receiver's certificate names " + certificate.list() + ", not '" +
                 dialled_host_ +
                 "'; connect with one of those names, or remake its certificate with "
                 "deploy/make-certs.sh --receiver-name/--receiver-ip " +
                 dialled_host_;
    } else if (is_chain_error(error)) {
      message += client ? ": is --ca the CA that signed the receiver's certificate?"
                        : ": the sender's certificate is not signed by this receiver's CA "
                          "(--ca); make it with the same CA (deploy/make-certs.sh)";
    } else if (error == X509_V_ERR_CERT_HAS_EXPIRED || error == X509_V_ERR_CERT_NOT_YET_VALID) {
      message += ": check both machines' clocks, or make a new certificate";
    } else if (error == X509_V_ERR_INVALID_PURPOSE) {
      message += client ? ": it is not a server certificate (extendedKeyUsage serverAuth); use "
                          "the receiver certificate from deploy/make-certs.sh"
                        : ": it is not a client certificate (extendedKeyUsage clientAuth); use "
                          "a sender certificate from deploy/make-certs.sh";
    }
    return Error(ErrorCode::kVerifyFailed, std::move(message));
  }
  if (!client && net_detail::is_missing_peer_certificate(ec)) {
    return Error(ErrorCode::kVerifyFailed,
                 where + "no client certificate (" + describe_error(ec) +
                     "); senders need one signed by this receiver's CA (deploy/make-certs.sh)");
  }
  if (auto alert = net_detail::received_alert(ec)) {
    return alert_error(*alert, ec, client ? "TLS handshake failed" : "refused");
  }
  if (net_detail::is_connection_closed(ec)) {
    return Error(ErrorCode::kUnavailable,
                 where + "connection closed by peer" +
                     (client ? " (is that port a deltasync receiver speaking TLS 1.3?)" : ""));
  }
  if (net_detail::is_protocol_mismatch(ec)) {
    return Error(ErrorCode::kProtocol,
                 where + describe_error(ec) +
                     (client ? " (is that port a deltasync receiver? it must speak TLS 1.3)"
                             : " (not a TLS 1.3 client)"));
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    return Error(ErrorCode::kProtocol, where + describe_error(ec));
  }
  return Error(ErrorCode::kUnavailable, where + describe_error(ec));
}

Status FrameChannel::Impl::connect(const std::string& host, uint16_t port) {
  dialled_host_ = host;
  start_deadline(limits.handshake_timeout);
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  error_code not_ip;
  asio::ip::address literal = asio::ip::make_address(name, not_ip);
  const bool is_ip = !not_ip;

  std::vector<tcp::endpoint> endpoints;
  if (is_ip) {
    endpoints.emplace_back(literal, port);
  } else {
    resolver.emplace(io);
    auto results = std::make_shared<tcp::resolver::results_type>();
    error_code ec = run(
        [&](auto handler) {
          resolver->async_resolve(
              name, std::to_string(port), tcp::resolver::numeric_service,
              [results, handler = std::move(handler)](const error_code& e,
                                                      tcp::resolver::results_type found) mutable {
                *results = std::move(found);
                handler(e);
              });
        },
        /*abandon_on_timeout=*/true);
    if (ec) {
      if (cancelled_.load()) return fail(io_error(ec, "resolving " + name));
      if (timed_out_) {
        return fail(Error(ErrorCode::kTimeout, label + ": cannot resolve '" + name + "' within " +
                                                   duration_text(limits.handshake_timeout) +
                                                   " (DNS is not answering)"));
      }
      return fail(Error(ErrorCode::kUnavailable,
                        label + ": cannot resolve '" + name + "': " + describe_error(ec) +
                            " (check the name, or give the receiver's IP address)"));
    }
    for (const auto& entry : *results) endpoints.push_back(entry.endpoint());
  }

  error_code ec = run([&](auto handler) {
    asio::async_connect(stream.next_layer().socket(), endpoints,
                        [handler = std::move(handler)](
                            const error_code& e, const tcp::endpoint&) mutable { handler(e); });
  });
  if (ec) {
    if (cancelled_.load()) return fail(io_error(ec, "connecting"));
    if (timed_out_) {
      return fail(Error(
          ErrorCode::kTimeout,
          label + ": no TCP connection within " + duration_text(limits.handshake_timeout) +
              " (is the host up, and port " + std::to_string(port) + " open through firewalls?)"));
    }
    std::string hint =
        ec == asio::error::connection_refused
            ? " (is deltarecvd running there, listening on port " + std::to_string(port) + "?)"
            : " (is the host reachable?)";
    return fail(
        Error(ErrorCode::kUnavailable, label + ": cannot connect: " + describe_error(ec) + hint));
  }
  set_socket_options();
  record_peer();

  SSL* ssl = stream.native_handle();
  ERR_clear_error();
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      return fail(Error(ErrorCode::kInvalidArgument,
                        label + ": cannot check certificates against the address '" + name +
                            "': " + net_detail::take_openssl_errors()));
    }
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name.c_str()) != 1 || SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
      return fail(Error(ErrorCode::kInvalidArgument, label + ": '" + name +
                                                         "' cannot be used as a TLS host name: " +
                                                         net_detail::take_openssl_errors()));
    }
  }
  // Counts the handshake messages a resumption leaves out.
  SSL_set_msg_callback_arg(ssl, this);
  SSL_set_msg_callback(
      ssl, [](int, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
        if (content_type != SSL3_RT_HANDSHAKE || len == 0) return;
        int type = static_cast<const unsigned char*>(buf)[0];
        if (type == SSL3_MT_CERTIFICATE || type == SSL3_MT_CERTIFICATE_REQUEST ||
            type == SSL3_MT_CERTIFICATE_VERIFY) {
          // OpenSSL writes each handshake message in a record of its own: 5
          // bytes of header, 1 of inner content type, 16 of AEAD tag.
          static_cast<FrameChannel::Impl*>(arg)->certificate_message_bytes += len + 22;
        }
      });
  if (!resume_session.empty()) {
    const auto* der = reinterpret_cast<const unsigned char*>(resume_session.data());
    SSL_SESSION* session = d2i_SSL_SESSION(nullptr, &der, static_cast<long>(resume_session.size()));
    // Unreadable, or not for this protocol: a full handshake instead.
    if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) SSL_set_session(ssl, session);
    SSL_SESSION_free(session);
    ERR_clear_error();
  }
  stream.set_verify_callback(
      [this](bool preverified, ssl::verify_context& context) {
        return on_verify(preverified, context.native_handle(), nullptr);
      },
      ec);
  if (ec) return fail(Error(ErrorCode::kInternal, label + ": " + describe_error(ec)));
  ec = run(
      [&](auto handler) { stream.async_handshake(ssl::stream_base::client, std::move(handler)); });
  if (ec) return fail(handshake_error(ec));
  if (SSL_get_verify_result(ssl) != X509_V_OK || SSL_get0_peer_certificate(ssl) == nullptr) {
    return fail(
        Error(ErrorCode::kVerifyFailed, label + ": the receiver's certificate is unverified"));
  }
  peer_name = certificate_names(SSL_get0_peer_certificate(ssl)).display_name();
  return ok_status();
}

Status FrameChannel::Impl::accept(const std::vector<std::string>& allowed_names) {
  start_deadline(limits.handshake_timeout);
  set_socket_options();
  record_peer();
  error_code ec;
  stream.set_verify_callback(
      [this, &allowed_names](bool preverified, ssl::verify_context& context) {
        return on_verify(preverified, context.native_handle(), &allowed_names);
      },
      ec);
  if (ec) return fail(Error(ErrorCode::kInternal, label + ": " + describe_error(ec)));
  ec = run(
      [&](auto handler) { stream.async_handshake(ssl::stream_base::server, std::move(handler)); });
  if (ec) return fail(handshake_error(ec));
  SSL* ssl = stream.native_handle();
  if (SSL_get_verify_result(ssl) != X509_V_OK || SSL_get0_peer_certificate(ssl) == nullptr) {
    return fail(
        Error(ErrorCode::kVerifyFailed, label + ": refused: unverified client certificate"));
  }
  net_detail::CertificateNames names = certificate_names(SSL_get0_peer_certificate(ssl));
  // A resumed handshake skips the verify callback: the names were checked
  // when the session was made, by this same context; check them again all
  // the same, so the rule holds by construction.
  if (SSL_session_reused(ssl) == 1 && !allowed_names.empty() &&
      !name_allowed(names, allowed_names)) {
    return fail(Error(ErrorCode::kVerifyFailed,
                      label + ": refused: certificate of '" + names.display_name() +
                          "' is not among the allowed senders (" + join(allowed_names) + ")"));
  }
  peer_name = names.display_name();
  label = "sender " + peer_name + " at " + peer_address;
  return ok_status();
}

Status FrameChannel::Impl::write_bytes(std::string_view first, std::string_view second,
                                       std::string_view step) {
  start_deadline(limits.io_timeout);
  error_code ec;
  if (first.size() + second.size() <= kCoalesceLimit) {
    write_buffer_.assign(first);
    write_buffer_.append(second);
    ec = run([&](auto handler) {
      asio::async_write(stream, asio::buffer(write_buffer_), std::move(handler));
    });
  } else {
    std::array<asio::const_buffer, 2> buffers{asio::buffer(first.data(), first.size()),
                                              asio::buffer(second.data(), second.size())};
    ec = run([&](auto handler) { asio::async_write(stream, buffers, std::move(handler)); });
  }
  if (ec) return fail(send_error(ec, step));
  return ok_status();
}

Status FrameChannel::Impl::send_frame(std::string_view payload) {
  DS_RETURN_IF_ERROR(usable());
  if (payload.size() > limits.max_frame_bytes) {
    return make_error(ErrorCode::kInvalidArgument,
                      label + ": a frame of " + std::to_string(payload.size()) +
                          " bytes is over the limit of " + std::to_string(limits.max_frame_bytes) +
                          " bytes (max_frame_bytes); split it");
  }
  const auto size = static_cast<uint32_t>(payload.size());
  const std::array<char, 4> prefix{static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                                   static_cast<char>(size >> 8), static_cast<char>(size)};
  return write_bytes(std::string_view(prefix.data(), prefix.size()), payload,
                     "sending a frame of " + std::to_string(size) + " bytes");
}

Result<std::string> FrameChannel::Impl::receive_frame() {
  if (last_frame_) {
    std::string frame = std::move(*last_frame_);
    last_frame_.reset();
    return frame;
  }
  DS_RETURN_IF_ERROR(usable());
  start_deadline(limits.io_timeout);  // for the prefix and the payload together
  std::array<unsigned char, 4> prefix{};
  error_code ec = run(
      [&](auto handler) { asio::async_read(stream, asio::buffer(prefix), std::move(handler)); });
  if (ec) return fail(io_error(ec, "receiving a frame"));
  const uint32_t size = frame_size(prefix);
  if (size > limits.max_frame_bytes) {
    return fail(Error(ErrorCode::kProtocol,
                      label + ": the peer announced a frame of " + std::to_string(size) +
                          " bytes, over the limit of " + std::to_string(limits.max_frame_bytes) +
                          " bytes (max_frame_bytes); closed the connection"));
  }
  std::string payload(size, '\0');
  if (size > 0) {
    ec = run(
        [&](auto handler) { asio::async_read(stream, asio::buffer(payload), std::move(handler)); });
    if (ec) return fail(io_error(ec, "receiving a frame of " + std::to_string(size) + " bytes"));
  }
  return payload;
}

Status FrameChannel::Impl::write_raw(std::string_view bytes) {
  DS_RETURN_IF_ERROR(usable());
  return write_bytes(bytes, {}, "sending raw bytes");
}

// ---- FrameChannel ---------------------------------------------------------------

FrameChannel::Impl& channel_impl(FrameChannel& channel) {
  return *channel.impl_;
}

FrameChannel::FrameChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrameChannel::~FrameChannel() = default;

Status FrameChannel::send_frame(std::string_view payload) {
  return impl_->send_frame(payload);
}
Result<std::string> FrameChannel::receive_frame() {
  return impl_->receive_frame();
}
void FrameChannel::shutdown() {
  impl_->shutdown();
}
const std::string& FrameChannel::peer_name() const {
  return impl_->peer_name;
}
const std::string& FrameChannel::peer_address() const {
  return impl_->peer_address;
}
uint64_t FrameChannel::socket_bytes_received() const {
  return impl_->stream.next_layer().bytes_received();
}
uint64_t FrameChannel::socket_bytes_sent() const {
  return impl_->stream.next_layer().bytes_sent();
}

bool FrameChannel::session_resumed() const {
  return SSL_session_reused(impl_->stream.native_handle()) == 1;
}

uint64_t FrameChannel::resumption_saving() {
  SSL* ssl = impl_->stream.native_handle();
  if (SSL_session_reused(ssl) == 1) return 0;
  SSL_SESSION* session = SSL_get1_session(ssl);
  uint64_t saving = 0;
  if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
    const unsigned char* ticket = nullptr;
    size_t ticket_length = 0;
    SSL_SESSION_get0_ticket(session, &ticket, &ticket_length);
    // ClientHello pre_shared_key: extension header 4, identities 2 + 2 +
    // ticket + 4 (age), binders 2 + 1 + 48 (SHA-384); ServerHello's: 6.
    uint64_t added = ticket_length + 69;
    uint64_t removed = impl_->certificate_message_bytes;
    saving = removed > added ? removed - added : 0;
  }
  SSL_SESSION_free(session);
  return saving;
}

std::string FrameChannel::resumption_ticket() {
  SSL_SESSION* session = SSL_get1_session(impl_->stream.native_handle());
  std::string der;
  if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
    int length = i2d_SSL_SESSION(session, nullptr);
    if (length > 0) {
      der.resize(static_cast<size_t>(length));
      auto* out = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_SSL_SESSION(session, &out) != length) der.clear();
    }
  }
  SSL_SESSION_free(session);
  return der;
}

// ---- connect_channel ------------------------------------------------------------

namespace {

Result<std::unique_ptr<FrameChannel>> connect(const ClientOptions& options,
                                              bool present_certificate) {
  std::string label = "receiver " + host_port(options.host, options.port);
  if (options.host.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "no receiver host given");
  }
  if (options.port == 0) {
    return make_error(ErrorCode::kInvalidArgument, label + ": port 0 cannot be connected to");
  }
  auto tls = net_detail::make_tls_context(Role::kClient, options.identity, present_certificate);
  if (!tls) return std::unexpected(std::move(tls.error()).with_context(label));
  try {
    auto impl =
        std::make_unique<FrameChannel::Impl>(std::move(*tls), options.limits, Role::kClient, label);
    impl->resume_session = options.resume_session;
    DS_RETURN_IF_ERROR(impl->connect(options.host, options.port));
    return std::make_unique<FrameChannel>(std::move(impl));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, label + ": " + e.what());
  }
}

}  // namespace

Result<std::unique_ptr<FrameChannel>> connect_channel(const ClientOptions& options) {
  return connect(options, /*present_certificate=*/true);
}

namespace net_testing {

Result<std::unique_ptr<FrameChannel>> connect_without_certificate(const ClientOptions& options) {
  return connect(options, /*present_certificate=*/false);
}

Status write_raw(FrameChannel& channel, std::string_view bytes) {
  return channel_impl(channel).write_raw(bytes);
}

}  // namespace net_testing

}  // namespace deltasync
