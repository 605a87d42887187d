// The network transport: framed byte messages over TLS 1.3 with mutual
// authentication (Boost.Asio + OpenSSL behind this header; callers see only
// our types).
//
// A frame is a u32 big-endian length followed by that many payload bytes,
// sent inside one TLS connection. Both ends present a certificate and verify
// the other's against their CA file; the client also checks that the
// server's certificate names the host it dialled, the server can restrict
// clients to a list of names. There is no plaintext mode.
//
//   sender (client)                            receiver (server)
//   auto ch = connect_channel(options);        auto server = FrameServer::bind(options,
//   ch.value()->send_frame(hello);                 [](FrameChannel& ch) { ... });
//   auto reply = ch.value()->receive_frame();  stop_on_signals(**server, {SIGTERM, SIGINT});
//                                              (*server)->run();   // until stopped
//
// Deadlines: connecting plus the handshake must finish within
// ChannelLimits::handshake_timeout, each whole frame read or write within
// io_timeout (a peer trickling a frame byte by byte is cut at the deadline).
//
// Errors (Error codes a caller can act on):
//   kUnavailable     cannot connect, or the connection ended ("connection
//                    closed by peer", reset); retrying later may help.
//   kTimeout         a deadline passed.
//   kVerifyFailed    certificate checks failed: the receiver's certificate
//                    did not verify or does not name the host, or the
//                    receiver refused this sender's certificate (no
//                    certificate, unknown CA, name not allowed). Retrying
//                    will not help until the certificates change.
//   kProtocol        the peer broke the framing (frame over the limit) or TLS.
//   kInvalidArgument a frame over the limit was given to send_frame(), or bad
//                    options / certificate files (messages name the file).
//   kNotFound        a certificate, key or CA file does not exist.
//   kCancelled       shutdown() was called.
// Messages name the peer ("receiver edge-1:7443: ...") and, where there is
// one, say what to do.
//
// TLS 1.3 detail: the client's handshake completes before the server has
// checked the client certificate, so a receiver that refuses this sender
// (no certificate, unknown CA, name not allowed) is seen by the client on its
// first receive_frame() (or a send_frame() after the receiver has closed),
// as kVerifyFailed saying so; connect_channel() itself succeeds then.
//
// After any error other than kInvalidArgument from send_frame(), the
// connection is closed and every later call returns an error. One exception:
// when a client's send failed because the receiver closed, the last frame
// the receiver sent before closing (its SessionError, saying why) is returned
// by the next receive_frame().
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/net/tls_options.h"
#include "common/util/result.h"

namespace deltasync {

// One TLS connection, either end. Owned and used by ONE thread: send_frame()
// and receive_frame() block that thread until done or their deadline (one
// operation at a time; the channel has no internal threads). Only
// shutdown() may be called from another thread, while the channel is alive.
// Destroying the channel closes the connection (no TLS close_notify: the
// peer's pending receive_frame() fails with "connection closed by peer", the
// protocol above decides whether that was expected).
class FrameChannel {
 public:
  struct Impl;  // common/net/channel_impl.h; only common/net/ makes channels
  explicit FrameChannel(std::unique_ptr<Impl> impl);
  virtual ~FrameChannel();
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;

  // Sends one frame: u32 big-endian length prefix + payload.
  // kInvalidArgument (nothing sent, the channel stays usable) if the payload
  // is larger than max_frame_bytes.
  Status send_frame(std::string_view payload);
  // Receives one frame. kProtocol if the announced length is over
  // max_frame_bytes (checked BEFORE allocating), kUnavailable on EOF/reset
  // ("connection closed by peer"), kTimeout on the deadline, kCancelled
  // after shutdown().
  Result<std::string> receive_frame();
  // Thread-safe: cancels pending I/O from another thread (server stop,
  // SIGTERM); the blocked call and all later calls fail with kCancelled.
  void shutdown();

  // The verified peer certificate's subject CN (or its first DNS
  // subjectAltName if it has no CN).
  const std::string& peer_name() const;
  // "ip:port" ("[v6]:port" for IPv6).
  const std::string& peer_address() const;
  // Bytes read from / written to the TCP socket: TLS records, handshake
  // included (not IP/TCP headers). Readable by the owning thread.
  uint64_t socket_bytes_received() const;
  uint64_t socket_bytes_sent() const;

  // Whether the handshake resumed an earlier session (no certificates were
  // exchanged; the peer's identity is the one verified then).
  bool session_resumed() const;
  // Client side: the session to offer next time (ClientOptions::
  // resume_session), DER, once the receiver's ticket has arrived (it comes
  // after the handshake; any frame received brings it); empty until then.
  // Secret: whoever holds it can resume as this sender until it expires.
  std::string resumption_ticket();
  // Client side: about how many bytes fewer the next handshake to this
  // receiver will cost when it resumes the session resumption_ticket() gives:
  // this handshake's certificate messages (Certificate, CertificateRequest,
  // CertificateVerify, both ways) less what a resumption adds (the PSK
  // extensions with the ticket). 0 when this handshake was itself resumed or
  // no ticket came. For dry-run estimates.
  uint64_t resumption_saving();

 private:
  friend Impl& channel_impl(FrameChannel& channel);
  std::unique_ptr<Impl> impl_;
};

struct ClientOptions {
  TlsIdentity identity;  // this sender's certificate/key; the CA of receivers
  ChannelLimits limits;
  std::string host;  // DNS name or IP literal; the receiver's certificate must name it
  uint16_t port = 7443;
  // A session from an earlier channel to the same host and port with the
  // same identity (FrameChannel::resumption_ticket()), or empty. A stale or
  // foreign one only costs a full handshake.
  std::string resume_session;
};

// Connects to host:port (every address the name resolves to, in order),
// verifies the server certificate against identity.ca_certificates AND that
// it names `host` (DNS subjectAltName/CN via host-name check, or an IP
// subjectAltName when host is an IP literal; SNI is sent for names), and
// presents the client certificate. Errors name the host and say what to do,
// e.g. "receiver 127.0.0.1:7443: TLS handshake failed: certificate verify
// failed (unable to get local issuer certificate, ...): is --ca the CA that
// signed the receiver's certificate?". The certificate files are read on
// each call. Blocks for at most limits.handshake_timeout (plus, for a host
// name, a hung DNS lookup, which cannot be abandoned).
Result<std::unique_ptr<FrameChannel>> connect_channel(const ClientOptions& options);

struct ServerOptions {
  TlsIdentity identity;  // this receiver's certificate/key; the CA of senders
  ChannelLimits limits;
  std::string listen_address = "0.0.0.0";  // an IPv4 or IPv6 address, not a name
  uint16_t port = 7443;                    // 0 = pick one (tests); see FrameServer::port()
  // Empty = any certificate from the CA; else the client certificate's CN or
  // one of its DNS subjectAltNames must be listed (ASCII case-insensitive).
  // Checked during the handshake: an unlisted client never gets a channel.
  std::vector<std::string> allowed_client_names;
  // Concurrent sessions; beyond it a connection is handed to on_busy (after
  // its handshake) then closed. Handshakes in progress plus busy answers are
  // bounded by 2 * max_sessions; connections beyond that are closed at once.
  size_t max_sessions = 8;
};

// Accepts TLS connections; one thread per connection runs the TLS handshake
// (under handshake_timeout, so a stalled client cannot hold up accepting)
// and then the handler with the channel. Every refused connection is logged
// with spdlog::warn naming the peer address and why (no certificate, unknown
// CA, name not allowed, handshake timeout, too many connections, ...).
//
// Lifetime: the channel passed to a handler lives until the handler returns;
// do not keep it. The server must outlive run() and the handlers: destroy it
// after run() has returned (the destructor stops it and joins its threads).
// Thread safety: stop() and active_sessions() from any thread; run() from one
// thread. Handlers run concurrently on their own threads; an exception
// escaping a handler is logged and ends that session only.
class FrameServer {
 public:
  using Handler = std::function<void(FrameChannel&)>;
  struct Impl;

  // Loads the identity (errors name the file), binds and listens (errors say
  // which address/port and why). on_busy may be empty: busy connections are
  // then closed right after their handshake.
  static Result<std::unique_ptr<FrameServer>> bind(const ServerOptions& options, Handler on_session,
                                                   Handler on_busy = {});
  ~FrameServer();
  FrameServer(const FrameServer&) = delete;
  FrameServer& operator=(const FrameServer&) = delete;

  // The bound port (the one picked when ServerOptions::port was 0).
  uint16_t port() const;
  // Blocks until stop(): accepts connections and starts their sessions.
  // Returns at once if stop() was already called. When it returns, every
  // session has ended (handlers returned, channels closed).
  void run();
  // Thread-safe, idempotent: stops accepting (the listening socket is
  // closed), shutdown()s every live channel (their blocked calls return
  // kCancelled) and joins the session threads (except the calling one, if a
  // handler calls it). Not async-signal-safe: from a signal, use
  // stop_on_signals().
  void stop();
  // Sessions currently in on_session (not counting handshakes or busy ones).
  size_t active_sessions() const;

 private:
  explicit FrameServer(std::unique_ptr<Impl> impl);
  friend void stop_on_signals(FrameServer& server, std::initializer_list<int> signals);
  std::unique_ptr<Impl> impl_;
};

// Graceful shutdown on signals: from now on, the first of `signals` (e.g.
// SIGTERM, SIGINT) delivered to the process stops the server as stop() does
// (logged at info): no new connections, every live channel shut down; run()
// returns once the sessions have ended. The signals stay handled (a second
// one is not fatal either) until the server is destroyed, which restores
// their default action. Call before run(), from the thread that made the
// server (preferably before other threads start). Uses asio::signal_set:
// the signal handler itself only wakes the accept loop, nothing runs in
// signal context. Invalid signal numbers are logged as errors and ignored.
//
//   auto server = FrameServer::bind(options, serve_session);   // in main
//   stop_on_signals(**server, {SIGTERM, SIGINT});
//   (*server)->run();                                           // returns after SIGTERM
void stop_on_signals(FrameServer& server, std::initializer_list<int> signals);

}  // namespace deltasync
