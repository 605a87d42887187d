// FrameChannel::Impl: one TLS connection with deadlines (internal to
// common/net/; the rest of the code sees frame_channel.h).
//
// Each channel owns a private io_context, used only by the owning thread
// (so it is an implicit strand): every operation starts one asynchronous
// Asio operation plus a steady_timer for its deadline and runs the context
// until the operation completes; when the timer fires first it closes the
// socket, which aborts the operation. shutdown() from another thread only
// sets a flag and posts the same abort to the context (posting is
// thread-safe); a call in progress on the owning thread runs it, a later
// call sees the flag. One operation is in flight at a time.
//
// Layers: asio::ssl::stream<CountingSocket>: the TLS engine reads and writes
// through CountingSocket, which counts every byte at the TCP socket
// (handshake included) and hands the operation to the tcp::socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/net/frame_channel.h"
#include "common/net/tls_context.h"

namespace deltasync {

namespace net_detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// The next layer under the TLS stream: a tcp::socket that counts the bytes
// its reads and writes move. Meets AsyncReadStream/AsyncWriteStream for
// asio::ssl::stream.
class CountingSocket {
 public:
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket::lowest_layer_type;

  explicit CountingSocket(asio::io_context& io) : socket_(io) {}

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return socket_.lowest_layer(); }
  tcp::socket& socket() { return socket_; }

  uint64_t bytes_received() const { return received_.load(std::memory_order_relaxed); }
  uint64_t bytes_sent() const { return sent_.load(std::memory_order_relaxed); }

  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    auto executor = asio::get_associated_executor(handler, socket_.get_executor());
    socket_.async_read_some(
        buffers, asio::bind_executor(executor, [this, handler = std::forward<Handler>(handler)](
                                                   const error_code& ec, size_t bytes) mutable {
          received_.fetch_add(bytes, std::memory_order_relaxed);
          handler(ec, bytes);
        }));
  }

  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    auto executor = asio::get_associated_executor(handler, socket_.get_executor());
    socket_.async_write_some(
        buffers, asio::bind_executor(executor, [this, handler = std::forward<Handler>(handler)](
                                                   const error_code& ec, size_t bytes) mutable {
          sent_.fetch_add(bytes, std::memory_order_relaxed);
          handler(ec, bytes);
        }));
  }

 private:
  tcp::socket socket_;
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> sent_{0};
};

// "1.2.3.4:5" / "[::1]:5" (IPv4-mapped IPv6 addresses as IPv4).
std::string endpoint_text(const tcp::endpoint& endpoint);
// "500 ms" / "20 s".
std::string duration_text(std::chrono::milliseconds duration);

}  // namespace net_detail

struct FrameChannel::Impl {
  using Role = net_detail::Role;

  // A channel with its own io_context and an unopened socket: connect()
  // opens it (client), or the server assign()s an accepted descriptor to
  // stream.next_layer().socket() and calls accept().
  Impl(std::shared_ptr<boost::asio::ssl::context> tls_context, const ChannelLimits& channel_limits,
       Role channel_role, std::string peer_label);
  ~Impl();

  // Client: resolve `host`, connect to `port`, TLS handshake verifying that
  // the server certificate names `host`; all within handshake_timeout.
  Status connect(const std::string& host, uint16_t port);
  // Server, on an accepted socket: TLS handshake within handshake_timeout;
  // a client certificate whose CN/DNS names are not in `allowed_names`
  // (unless empty) is refused during the handshake. The error says why, for
  // the server's log.
  Status accept(const std::vector<std::string>& allowed_names);

  Status send_frame(std::string_view payload);
  Result<std::string> receive_frame();
  // Unframed bytes inside TLS (tests: a bare length prefix, a trickle).
  Status write_raw(std::string_view bytes);
  void shutdown();

  // First, so that it is destroyed last, after every I/O object on it.
  boost::asio::io_context io{1};
  std::shared_ptr<boost::asio::ssl::context> tls;
  ChannelLimits limits;
  Role role;
  // Names the peer in messages: "receiver edge-1:7443", "sender 10.0.0.5:51234"
  // (after the handshake "sender build-1 at 10.0.0.5:51234").
  std::string label;
  boost::asio::ssl::stream<net_detail::CountingSocket> stream;
  boost::asio::steady_timer timer;
  std::optional<boost::asio::ip::tcp::resolver> resolver;
  std::string peer_name;
  std::string peer_address;
  std::string resume_session;  // client: a DER session to offer, or empty
  // Bytes of the certificate messages seen in the handshake (both ways),
  // with their records, from OpenSSL's message callback.
  uint64_t certificate_message_bytes = 0;

 private:
  // What the verify callback saw (the first failure).
  struct VerifyFailure {
    int error = 0;  // X509_V_OK
    int depth = 0;
    net_detail::CertificateNames certificate;
    bool name_not_allowed = false;
    std::string allowed;  // "alice, bob" when name_not_allowed
  };

  // Runs one asynchronous operation started by `start(handler)` until it
  // completes or the deadline (deadline_) aborts it. With
  // abandon_on_timeout, returns at the deadline even if the operation
  // cannot be aborted (name resolution).
  template <class Start>
  boost::system::error_code run(Start&& start, bool abandon_on_timeout = false);
  // Closes the socket and cancels a resolution: every pending operation
  // completes with an error. Runs on the owning thread only.
  void abort_io();
  void start_deadline(std::chrono::milliseconds timeout);
  bool on_verify(bool preverified, X509_STORE_CTX* context,
                 const std::vector<std::string>* allowed_names);
  void set_socket_options();
  void record_peer();
  Status usable() const;
  // Remembers `error` for later calls, closes the socket, returns it.
  std::unexpected<Error> fail(Error error);
  Error io_error(const boost::system::error_code& ec, std::string_view step);
  Error alert_error(int alert, const boost::system::error_code& ec, std::string_view step) const;
  Error handshake_error(const boost::system::error_code& ec);
  // A send failed because the connection ended: the client reads once more
  // for a TLS alert explaining it (the receiver refused the certificate), or
  // for the frames the receiver sent before it closed (keeping the last).
  Error send_error(const boost::system::error_code& ec, std::string_view step);
  Status write_bytes(std::string_view first, std::string_view second, std::string_view step);

  std::chrono::steady_clock::time_point deadline_;
  std::chrono::milliseconds deadline_length_{0};
  std::atomic<bool> cancelled_{false};
  bool timed_out_ = false;
  std::optional<Error> failed_;
  std::string dialled_host_;  // client: the host the certificate must name
  VerifyFailure verify_;
  std::string write_buffer_;
  // The last frame the peer sent before it closed, found by send_error();
  // the next receive_frame() returns it.
  std::optional<std::string> last_frame_;
};

// The Impl behind a channel (the server runs its handshake through it).
FrameChannel::Impl& channel_impl(FrameChannel& channel);

}  // namespace deltasync
