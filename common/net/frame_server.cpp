// FrameServer and stop_on_signals(); see frame_channel.h.
//
// The accept loop runs on the thread in run(), on the server's own
// io_context, which also carries the signal_set of stop_on_signals(). Each
// accepted socket's descriptor is released from that context and handed to
// a new session thread, which makes the channel (with its own io_context)
// around it, runs the TLS handshake (handshake_timeout), then the handler.
// So a client that never finishes its handshake holds one thread for at
// most handshake_timeout, and never the accept loop.
//
// Bookkeeping (under `mutex`): `pending` counts threads in their handshake
// or answering busy, `active` those in on_session. A connection arriving
// while pending == 2 * max_sessions is closed at once (no thread); one whose
// handshake finishes while active == max_sessions goes to on_busy. Finished
// threads put their id on `finished`; the accept loop joins them, stop()
// and the end of run() join the rest. `running` counts threads that have
// not finished yet, so that stop() also waits for threads another thread is
// joining at the same time.
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/net/channel_impl.h"

namespace deltasync {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using net_detail::tcp;

namespace {
// A failed accept (e.g. out of descriptors) is retried after this.
constexpr std::chrono::seconds kAcceptRetry{1};
// The server whose session runs on this thread, if any (so that stop()
// called from a handler does not wait for itself).
thread_local const void* t_session_of = nullptr;
}  // namespace

struct FrameServer::Impl {
  Impl(const ServerOptions& server_options, Handler session_handler, Handler busy_handler,
       std::shared_ptr<ssl::context> tls_context)
      : options(server_options),
        on_session(std::move(session_handler)),
        on_busy(std::move(busy_handler)),
        tls(std::move(tls_context)),
        max_pending(2 * server_options.max_sessions) {}

  ~Impl() {
    stop();
    close_listener();
  }

  ServerOptions options;
  Handler on_session;
  Handler on_busy;
  std::shared_ptr<ssl::context> tls;
  const size_t max_pending;
  tcp::endpoint listen_endpoint;  // as bound (the real port)
  uint16_t bound_port = 0;

  // The accept loop's context and the objects on it (destroyed before it).
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer retry_timer{io};
  std::unique_ptr<asio::signal_set> signals;
  bool signal_wait_started = false;

  struct Session {
    std::thread thread;
    FrameChannel* channel = nullptr;  // while it exists
  };
  mutable std::mutex mutex;
  std::condition_variable thread_ended;
  bool stopping = false;
  size_t pending = 0;
  size_t active = 0;
  size_t running = 0;  // session threads that have not finished
  uint64_t next_id = 0;
  std::map<uint64_t, Session> sessions;
  std::vector<uint64_t> finished;

  void start_accept() {
    acceptor.async_accept([this](const error_code& ec, tcp::socket peer) {
      if (ec == asio::error::operation_aborted) return;  // the listener was closed
      if (ec) {
        spdlog::warn("port {}: accepting a connection failed: {}; retrying in {} s", bound_port,
                     net_detail::describe_error(ec), kAcceptRetry.count());
        retry_timer.expires_after(kAcceptRetry);
        retry_timer.async_wait([this](const error_code& timer_ec) {
          if (!timer_ec) start_accept();
        });
        return;
      }
      reap_finished();
      dispatch(std::move(peer));
      start_accept();
    });
  }

  // Starts a session thread for an accepted connection, or closes it.
  void dispatch(tcp::socket peer) {
    error_code ec;
    tcp::endpoint endpoint = peer.remote_endpoint(ec);
    const std::string address =
        ec ? std::string("unknown address") : net_detail::endpoint_text(endpoint);
    std::lock_guard lock(mutex);
    if (stopping) return;
    if (pending >= max_pending) {
      spdlog::warn(
          "sender {}: refused: {} connections are already in their TLS handshake or being told "
          "the receiver is busy (the limit is 2 x max_sessions = {}); closed",
          address, pending, max_pending);
      return;
    }
    const int fd = peer.release(ec);
    if (ec) {
      spdlog::warn("sender {}: cannot take over the connection: {}; closed", address,
                   net_detail::describe_error(ec));
      return;
    }
    const uint64_t id = next_id++;
    ++pending;
    ++running;
    try {
      sessions[id].thread = std::thread(&Impl::session_main, this, id, fd, address);
    } catch (const std::exception& e) {
      --pending;
      --running;
      sessions.erase(id);
      ::close(fd);
      spdlog::error("sender {}: cannot start a session thread: {}; closed", address, e.what());
    }
  }

  void session_main(uint64_t id, int fd, const std::string& address) {
    t_session_of = this;
    bool counted_pending = true;
    bool counted_active = false;
    std::unique_ptr<FrameChannel> channel;
    try {
      auto impl = std::make_unique<FrameChannel::Impl>(
          tls, options.limits, net_detail::Role::kServer, "sender " + address);
      error_code ec;
      impl->stream.next_layer().socket().assign(listen_endpoint.protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        throw boost::system::system_error(ec, "taking over the accepted socket");
      }
      channel = std::make_unique<FrameChannel>(std::move(impl));
    } catch (const std::exception& e) {
      if (!channel) ::close(fd);
      spdlog::error("sender {}: cannot set up the connection: {}; closed", address, e.what());
    }
    try {
      if (channel) serve(id, *channel, counted_pending, counted_active);
    } catch (const std::exception& e) {
      spdlog::error("{}: session ended by an exception: {}", channel_impl(*channel).label,
                    e.what());
    }
    {
      std::lock_guard lock(mutex);
      if (counted_pending) --pending;
      if (counted_active) --active;
      if (auto it = sessions.find(id); it != sessions.end()) it->second.channel = nullptr;
    }
    channel.reset();  // closes the connection
    asio::post(io, [this] { reap_finished(); });
    // Last: once `running` drops, stop() may return and the server may go.
    std::lock_guard lock(mutex);
    finished.push_back(id);
    --running;
    thread_ended.notify_all();
  }

  // Handshake, then on_session or on_busy. Moves the connection from
  // pending to active when it becomes a session.
  void serve(uint64_t id, FrameChannel& channel, bool& counted_pending, bool& counted_active) {
    {
      std::lock_guard lock(mutex);
      if (stopping) channel.shutdown();
      if (auto it = sessions.find(id); it != sessions.end()) it->second.channel = &channel;
    }
    FrameChannel::Impl& impl = channel_impl(channel);
    Status handshake = impl.accept(options.allowed_client_names);
    if (!handshake) {
      if (handshake.error().code() == ErrorCode::kCancelled) {
        spdlog::debug("{}", handshake.error().message());
      } else {
        spdlog::warn("{}", handshake.error().message());
      }
      return;
    }
    bool busy = false;
    {
      std::lock_guard lock(mutex);
      busy = active >= options.max_sessions;
      if (!busy) {
        --pending;
        ++active;
        counted_pending = false;
        counted_active = true;
      }
    }
    if (busy) {
      spdlog::warn("{}: refused: {} sessions are running already (max_sessions); {}", impl.label,
                   options.max_sessions, on_busy ? "answered busy, then closed" : "closed");
      if (on_busy) on_busy(channel);
      return;
    }
    spdlog::debug("{}: session started", impl.label);
    on_session(channel);
    spdlog::debug("{}: session ended", impl.label);
    // The session ran its course: let its TLS session be resumed. (OpenSSL
    // drops a cached session whose connection is freed without a shutdown,
    // and a sender's connection ends by closing the socket.)
    SSL_set_shutdown(impl.stream.native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }

  // Joins the threads that said they are done.
  void reap_finished() {
    std::vector<std::thread> done;
    {
      std::lock_guard lock(mutex);
      for (uint64_t id : finished) {
        if (auto it = sessions.find(id); it != sessions.end()) {
          done.push_back(std::move(it->second.thread));
          sessions.erase(it);
        }
      }
      finished.clear();
    }
    for (auto& thread : done) {
      if (thread.joinable()) thread.join();
    }
  }

  // Marks the server stopping and shuts every live channel down; no joins.
  void begin_stop() {
    std::lock_guard lock(mutex);
    stopping = true;
    for (auto& [id, session] : sessions) {
      if (session.channel != nullptr) session.channel->shutdown();
    }
  }

  // On the accept loop's thread (or when it does not run).
  void close_listener() {
    error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
    if (signals) signals->cancel(ignored);
  }

  // Joins every session thread but the calling one, and waits for those
  // another thread is joining (run() and stop() may both be at it).
  void join_sessions() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex);
      for (auto it = sessions.begin(); it != sessions.end();) {
        if (it->second.thread.get_id() == std::this_thread::get_id()) {
          ++it;
          continue;
        }
        threads.push_back(std::move(it->second.thread));
        it = sessions.erase(it);
      }
    }
    for (auto& thread : threads) {
      if (thread.joinable()) thread.join();
    }
    const size_t self = t_session_of == this ? 1 : 0;
    std::unique_lock lock(mutex);
    thread_ended.wait(lock, [&] { return running <= self; });
  }

  void stop() {
    begin_stop();
    asio::post(io, [this] { close_listener(); });
    join_sessions();
  }

  void run() {
    {
      std::lock_guard lock(mutex);
      if (stopping) {
        close_listener();
        return;
      }
    }
    start_accept();
    io.run();
    close_listener();
    join_sessions();
  }

  void wait_for_signal() {
    signals->async_wait([this](const error_code& ec, int signal_number) {
      if (ec) return;
      size_t live = 0;
      {
        std::lock_guard lock(mutex);
        live = active;
      }
      spdlog::info("{}: stopping (no new connections; {} session(s) cancelled)",
                   strsignal(signal_number), live);
      begin_stop();
      close_listener();  // run() returns once its context is idle, then joins the sessions
    });
  }
};

Result<std::unique_ptr<FrameServer>> FrameServer::bind(const ServerOptions& options,
                                                       Handler on_session, Handler on_busy) {
  if (!on_session)
    return make_error(ErrorCode::kInvalidArgument, "FrameServer: no session handler");
  if (options.max_sessions == 0) {
    return make_error(ErrorCode::kInvalidArgument, "max_sessions must be at least 1");
  }
  error_code ec;
  asio::ip::address address = asio::ip::make_address(options.listen_address, ec);
  if (ec) {
    return make_error(ErrorCode::kInvalidArgument,
                      "listen address '" + options.listen_address +
                          "' is not an IP address (give an address such as 0.0.0.0 or ::, not a "
                          "host name)");
  }
  const tcp::endpoint endpoint(address, options.port);
  const std::string where = net_detail::endpoint_text(endpoint);
  DS_ASSIGN_OR_RETURN(
      auto tls, net_detail::make_tls_context(net_detail::Role::kServer, options.identity, true));
  try {
    auto impl =
        std::make_unique<Impl>(options, std::move(on_session), std::move(on_busy), std::move(tls));
    impl->acceptor.open(endpoint.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) impl->acceptor.bind(endpoint, ec);
    if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::string hint;
      if (ec == asio::error::address_in_use) {
        hint = " (is another deltarecvd running? choose another port)";
      } else if (ec == asio::error::access_denied) {
        hint = " (ports below 1024 need privileges)";
      } else if (ec == boost::system::errc::address_not_available) {
        hint = " (no interface of this machine has that address)";
      }
      return make_error(ErrorCode::kIo,
                        "cannot listen on " + where + ": " + net_detail::describe_error(ec) + hint);
    }
    impl->listen_endpoint = impl->acceptor.local_endpoint();
    impl->bound_port = impl->listen_endpoint.port();
    return std::unique_ptr<FrameServer>(new FrameServer(std::move(impl)));
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, "listening on " + where + ": " + e.what());
  }
}

FrameServer::FrameServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrameServer::~FrameServer() = default;

uint16_t FrameServer::port() const {
  return impl_->bound_port;
}

void FrameServer::run() {
  impl_->run();
}

void FrameServer::stop() {
  impl_->stop();
}

size_t FrameServer::active_sessions() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->active;
}

void stop_on_signals(FrameServer& server, std::initializer_list<int> signals) {
  FrameServer::Impl& impl = *server.impl_;
  if (!impl.signals) impl.signals = std::make_unique<asio::signal_set>(impl.io);
  for (int signal_number : signals) {
    error_code ec;
    impl.signals->add(signal_number, ec);
    if (ec) {
      spdlog::error("cannot handle signal {}: {}", signal_number, net_detail::describe_error(ec));
    }
  }
  if (!impl.signal_wait_started) {
    impl.signal_wait_started = true;
    impl.wait_for_signal();
  }
}

}  // namespace deltasync
