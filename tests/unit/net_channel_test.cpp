// The network transport (common/net): framed messages over TLS 1.3 with
// mutual authentication, over loopback, with real certificates made by
// deploy/make-certs.sh (a "good" CA with receiver/alice/bob, and an "other"
// CA whose sender is also called alice). Shows: frames of every size round
// trip; the byte counters see the handshake; every kind of refused peer is
// refused, logged by the server with the reason, and the client gets an
// error saying what to do; an oversized length prefix is refused before
// allocating; slow peers are cut at their deadline without blocking others;
// max_sessions and the handshake bound hold; stop() and signals end blocked
// sessions promptly. Timeouts are short where they are the point (500 ms)
// and generous elsewhere, so a loaded machine does not make tests flaky.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/io/file.h"
#include "common/net/frame_channel.h"
#include "common/net/net_testing.h"
#include "tests/support/test_files.h"

// The largest single allocation each thread made since it last reset this:
// shows that a huge announced frame is refused before anything is allocated.
namespace {
thread_local size_t t_largest_allocation = 0;
}  // namespace

// (GCC 12 warns that free() does not match operator new when it inlines
// these; they do match: both are malloc/free.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (size > t_largest_allocation) t_largest_allocation = size;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::random_bytes;

constexpr uint32_t kMiB = 1u << 20;

milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

// Keeps every log message (with its level) for the checks on the server's
// reasons.
class CaptureSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines_.push_back(std::string(spdlog::level::to_string_view(msg.level).data(),
                                 spdlog::level::to_string_view(msg.level).size()) +
                     ": " + std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

// The certificates, made once per test process by the real script.
struct Certificates {
  std::unique_ptr<TempDir> dir;
  fs::path good, other;
};

const Certificates& certificates() {
  static Certificates certs = [] {
    Certificates made;
    auto dir = TempDir::create(default_temp_parent(), "net-channel-test-");
    if (!dir) {
      ADD_FAILURE() << dir.error().message();
      return made;
    }
    made.dir = std::make_unique<TempDir>(std::move(*dir));
    made.good = made.dir->path() / "good";
    made.other = made.dir->path() / "other";
    const std::string script = std::string(DELTASYNC_SOURCE_DIR) + "/deploy/make-certs.sh";
    const std::string good = "bash '" + script + "' '" + made.good.string() +
                             "' --receiver-name localhost --receiver-ip 127.0.0.1 "
                             "--sender-name alice --sender-name bob --days 2 >/dev/null";
    const std::string other = "bash '" + script + "' '" + made.other.string() +
                              "' --receiver-name localhost --receiver-ip 127.0.0.1 "
                              "--sender-name alice --days 2 >/dev/null";
    EXPECT_EQ(0, std::system(good.c_str())) << good;
    EXPECT_EQ(0, std::system(other.c_str())) << other;
    return made;
  }();
  return certs;
}

TlsIdentity sender(const fs::path& dir, const std::string& name) {
  return TlsIdentity{dir / ("sender-" + name + ".pem"), dir / ("sender-" + name + ".key"),
                     certificates().good / "ca.pem"};
}

TlsIdentity receiver(const fs::path& dir) {
  return TlsIdentity{dir / "receiver.pem", dir / "receiver.key", certificates().good / "ca.pem"};
}

ChannelLimits generous_limits() {
  ChannelLimits limits;
  limits.max_frame_bytes = 4 * kMiB;
  limits.handshake_timeout = milliseconds(10000);
  limits.io_timeout = milliseconds(10000);
  return limits;
}

// Echoes frames until the connection ends.
void echo(FrameChannel& channel) {
  for (;;) {
    auto frame = channel.receive_frame();
    if (!frame) return;
    if (!channel.send_frame(*frame)) return;
  }
}

// A server running on its own thread; stopped and joined when destroyed.
class RunningServer {
 public:
  explicit RunningServer(std::unique_ptr<FrameServer> server)
      : server_(std::move(server)), thread_([this] { server_->run(); }) {}
  ~RunningServer() {
    server_->stop();
    thread_.join();
  }
  FrameServer& server() { return *server_; }
  uint16_t port() const { return server_->port(); }

 private:
  std::unique_ptr<FrameServer> server_;
  std::thread thread_;
};

// A plain TCP connection that never speaks TLS.
class RawConnection {
 public:
  RawConnection(uint16_t port, const char* address = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = htons(port);
    ::inet_pton(AF_INET, address, &peer.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  // Waits up to `limit` for the other side to close (EOF or reset).
  bool wait_closed(milliseconds limit) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((limit.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buffer[512];
    for (;;) {
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class NetChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(certificates().dir) << "no certificates";
    ASSERT_TRUE(fs::exists(certificates().good / "sender-bob.pem"));
    ASSERT_TRUE(fs::exists(certificates().other / "sender-alice.pem"));
    sink_ = std::make_shared<CaptureSink>();
    auto logger = std::make_shared<spdlog::logger>(
        "net-test",
        spdlog::sinks_init_list{sink_, std::make_shared<spdlog::sinks::stderr_color_sink_mt>()});
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override {
    spdlog::set_default_logger(spdlog::stderr_color_mt("net-test-after"));
  }

  const fs::path& good() { return certificates().good; }
  const fs::path& other() { return certificates().other; }

  ServerOptions server_options() {
    ServerOptions options;
    options.identity = receiver(good());
    options.limits = generous_limits();
    options.listen_address = "127.0.0.1";
    options.port = 0;
    return options;
  }

  ClientOptions client_options(uint16_t port, const std::string& host = "127.0.0.1",
                               const std::string& name = "alice") {
    ClientOptions options;
    options.identity = sender(good(), name);
    options.limits = generous_limits();
    options.host = host;
    options.port = port;
    return options;
  }

  std::unique_ptr<RunningServer> start(const ServerOptions& options,
                                       FrameServer::Handler on_session,
                                       FrameServer::Handler on_busy = {}) {
    auto server = FrameServer::bind(options, std::move(on_session), std::move(on_busy));
    EXPECT_TRUE(server) << server.error().message();
    if (!server) return nullptr;
    return std::make_unique<RunningServer>(std::move(*server));
  }

  // The first server log line holding `text`, waiting up to 5 s for it.
  std::string log_line(const std::string& text) {
    auto until = Clock::now() + milliseconds(5000);
    do {
      for (const auto& line : sink_->lines()) {
        if (line.find(text) != std::string::npos) return line;
      }
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < until);
    return {};
  }

  std::shared_ptr<CaptureSink> sink_;
};

// What a refused client sees: in TLS 1.3 its handshake finishes before the
// server has checked its certificate, so the refusal arrives on connect or
// on the first exchange (as the sender's protocol does it: send, then wait).
Error refusal(Result<std::unique_ptr<FrameChannel>> client) {
  auto seen = [](const char* where, const Error& error) {
    std::cout << "the client sees (" << where << "): " << error.message() << "\n";
    return error;
  };
  if (!client) return seen("connect", client.error());
  if (auto sent = (*client)->send_frame("hello"); !sent) return seen("send", sent.error());
  if (auto got = (*client)->receive_frame(); !got) return seen("receive", got.error());
  ADD_FAILURE() << "the client was served";
  return Error(ErrorCode::kInternal, "served");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(NetChannelTest, RoundTripsA4MiBFrameAndManySmallOnes) {
  std::promise<std::pair<std::string, std::string>> server_saw;
  auto server = start(server_options(), [&](FrameChannel& channel) {
    server_saw.set_value({channel.peer_name(), channel.peer_address()});
    echo(channel);
  });
  ASSERT_TRUE(server);
  // By name: the certificate's DNS name and SNI (the IP path is in other tests).
  auto client = connect_channel(client_options(server->port(), "localhost"));
  ASSERT_TRUE(client) << client.error().message();
  FrameChannel& channel = **client;
  EXPECT_EQ(channel.peer_name(), "localhost");
  EXPECT_EQ(channel.peer_address(), "127.0.0.1:" + std::to_string(server->port()));

  const std::string big = random_bytes(4 * kMiB, 1);  // exactly max_frame_bytes
  ASSERT_TRUE(channel.send_frame(big));
  auto back = channel.receive_frame();
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->size(), big.size());
  EXPECT_TRUE(*back == big);

  std::mt19937 rng(7);
  size_t frames = 0;
  for (int batch = 0; batch < 40; ++batch) {
    std::vector<std::string> sent;
    for (int i = 0; i < 50; ++i) {
      sent.push_back(random_bytes(rng() % 300, static_cast<unsigned>(batch * 50 + i)));
      ASSERT_TRUE(channel.send_frame(sent.back()));
    }
    for (const auto& expected : sent) {
      auto got = channel.receive_frame();
      ASSERT_TRUE(got) << got.error().message();
      ASSERT_EQ(*got, expected);
      ++frames;
    }
  }
  EXPECT_EQ(frames, 2000u);
  ASSERT_TRUE(channel.send_frame(""));
  auto empty = channel.receive_frame();
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");

  // One byte over the limit is refused before sending; the channel still works.
  auto over = channel.send_frame(std::string(4 * kMiB + 1, 'x'));
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(over.error().message(), "over the limit")) << over.error().message();
  ASSERT_TRUE(channel.send_frame("still here"));
  auto still = channel.receive_frame();
  ASSERT_TRUE(still);
  EXPECT_EQ(*still, "still here");

  auto seen = server_saw.get_future().get();
  EXPECT_EQ(seen.first, "alice");
  EXPECT_TRUE(seen.second.starts_with("127.0.0.1:")) << seen.second;
}

TEST_F(NetChannelTest, ByteCountersCountTheSocketIncludingTheHandshake) {
  std::promise<std::pair<uint64_t, uint64_t>> server_counts;
  auto server = start(server_options(), [&](FrameChannel& channel) {
    echo(channel);  // until the client closes
    server_counts.set_value({channel.socket_bytes_received(), channel.socket_bytes_sent()});
  });
  ASSERT_TRUE(server);
  uint64_t sent = 0;
  uint64_t received = 0;
  {
    auto client = connect_channel(client_options(server->port()));
    ASSERT_TRUE(client) << client.error().message();
    FrameChannel& channel = **client;
    const uint64_t handshake_sent = channel.socket_bytes_sent();
    const uint64_t handshake_received = channel.socket_bytes_received();
    // ClientHello + certificate (~320 bytes) + CertificateVerify + Finished,
    // and ServerHello + certificate (~350 bytes) + ... the other way.
    EXPECT_GT(handshake_sent, 500u);
    EXPECT_GT(handshake_received, 500u);
    std::cout << "handshake bytes: client sent " << handshake_sent << ", received "
              << handshake_received << "\n";

    const std::string payload = random_bytes(10000, 2);
    ASSERT_TRUE(channel.send_frame(payload));
    auto back = channel.receive_frame();
    ASSERT_TRUE(back);
    sent = channel.socket_bytes_sent();
    received = channel.socket_bytes_received();
    // Payload, prefix and TLS record overhead on top of the handshake.
    EXPECT_GT(sent, handshake_sent + payload.size() + 4);
    EXPECT_GT(received, handshake_received + payload.size() + 4);
    EXPECT_LT(sent, handshake_sent + payload.size() + 4 + 200);
  }
  // Both ends counted the same bytes: nothing was sent that was not read.
  auto counts = server_counts.get_future();
  ASSERT_EQ(counts.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [server_received, server_sent] = counts.get();
  EXPECT_EQ(server_received, sent);
  EXPECT_EQ(server_sent, received);
}

TEST_F(NetChannelTest, ClientWithoutCertificateIsRefused) {
  std::atomic<int> sessions{0};
  auto server = start(server_options(), [&](FrameChannel& channel) {
    ++sessions;
    echo(channel);
  });
  ASSERT_TRUE(server);
  Error error = refusal(net_testing::connect_without_certificate(client_options(server->port())));
  EXPECT_EQ(error.code(), ErrorCode::kVerifyFailed) << error.message();
  EXPECT_TRUE(contains(error.message(), "receiver 127.0.0.1:")) << error.message();
  EXPECT_TRUE(contains(error.message(), "requires a client certificate")) << error.message();
  std::string line = log_line("no client certificate");
  EXPECT_TRUE(line.starts_with("warning: sender 127.0.0.1:")) << line;
  EXPECT_EQ(sessions.load(), 0);
}

TEST_F(NetChannelTest, ClientCertificateFromAnotherCaIsRefused) {
  std::atomic<int> sessions{0};
  auto server = start(server_options(), [&](FrameChannel& channel) {
    ++sessions;
    echo(channel);
  });
  ASSERT_TRUE(server);
  ClientOptions options = client_options(server->port());
  options.identity = sender(other(), "alice");  // same name, other CA; trusts the good CA
  Error error = refusal(connect_channel(options));
  EXPECT_EQ(error.code(), ErrorCode::kVerifyFailed) << error.message();
  EXPECT_TRUE(contains(error.message(), "refused this sender's certificate")) << error.message();
  EXPECT_TRUE(contains(error.message(), "not signed by the CA the receiver trusts"))
      << error.message();
  std::string line = log_line("not signed by this receiver's CA");
  EXPECT_TRUE(line.starts_with("warning: sender 127.0.0.1:")) << line;
  EXPECT_TRUE(contains(line, "unable to get local issuer certificate")) << line;

  // A client that only sends learns it the same way: once the receiver has
  // closed, a send fails, and the receiver's alert explains why.
  auto sender_only = connect_channel(options);
  ASSERT_TRUE(sender_only) << sender_only.error().message();
  Status sent = ok_status();
  for (int i = 0; i < 200 && sent; ++i) {
    sent = (*sender_only)->send_frame(random_bytes(1000, static_cast<unsigned>(i)));
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_FALSE(sent);
  std::cout << "the client sees (send): " << sent.error().message() << "\n";
  EXPECT_EQ(sent.error().code(), ErrorCode::kVerifyFailed) << sent.error().message();
  EXPECT_TRUE(contains(sent.error().message(), "not signed by the CA the receiver trusts"))
      << sent.error().message();
  EXPECT_EQ(sessions.load(), 0);
}

TEST_F(NetChannelTest, ClientNameNotInTheAllowedListIsRefusedAndAListedOneServed) {
  std::atomic<int> sessions{0};
  ServerOptions options = server_options();
  options.allowed_client_names = {"bob", "carol"};
  auto server = start(options, [&](FrameChannel& channel) {
    ++sessions;
    echo(channel);
  });
  ASSERT_TRUE(server);
  Error error = refusal(connect_channel(client_options(server->port(), "127.0.0.1", "alice")));
  EXPECT_EQ(error.code(), ErrorCode::kVerifyFailed) << error.message();
  EXPECT_TRUE(contains(error.message(), "allow-client")) << error.message();
  std::string line = log_line("is not allowed");
  EXPECT_TRUE(contains(line, "certificate name 'alice'")) << line;
  EXPECT_TRUE(contains(line, "allowed: bob, carol")) << line;
  EXPECT_EQ(sessions.load(), 0);

  auto bob = connect_channel(client_options(server->port(), "127.0.0.1", "bob"));
  ASSERT_TRUE(bob) << bob.error().message();
  ASSERT_TRUE((*bob)->send_frame("hi"));
  auto back = (*bob)->receive_frame();
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, "hi");
  EXPECT_EQ(sessions.load(), 1);
}

TEST_F(NetChannelTest, ResumedSessionSkipsTheCertificatesAndKeepsTheIdentity) {
  ServerOptions options = server_options();
  options.allowed_client_names = {"bob"};
  std::mutex mutex;
  std::vector<std::string> peers;
  auto handler = [&](FrameChannel& channel) {
    {
      std::lock_guard lock(mutex);
      peers.push_back(channel.peer_name() + (channel.session_resumed() ? " resumed" : " full"));
    }
    echo(channel);
  };
  auto server = start(options, handler);
  ASSERT_TRUE(server);
  uint64_t predicted_saving = 0;
  auto exchange = [&](const ClientOptions& client_options, uint64_t* handshake_bytes,
                      bool* resumed) -> std::string {
    auto client = connect_channel(client_options);
    EXPECT_TRUE(client) << client.error().message();
    if (!client) return {};
    *handshake_bytes = (*client)->socket_bytes_sent() + (*client)->socket_bytes_received();
    *resumed = (*client)->session_resumed();
    EXPECT_TRUE((*client)->send_frame("hi"));
    auto back = (*client)->receive_frame();
    EXPECT_TRUE(back && *back == "hi");
    predicted_saving = (*client)->resumption_saving();
    return (*client)->resumption_ticket();
  };
  ClientOptions bob = client_options(server->port(), "127.0.0.1", "bob");
  uint64_t full_bytes = 0, resumed_bytes = 0;
  bool resumed = true;
  std::string ticket = exchange(bob, &full_bytes, &resumed);
  EXPECT_FALSE(resumed);
  ASSERT_FALSE(ticket.empty()) << "no ticket after a full handshake and one exchange";
  const uint64_t saving = predicted_saving;

  bob.resume_session = ticket;
  std::string next_ticket = exchange(bob, &resumed_bytes, &resumed);
  EXPECT_TRUE(resumed);
  std::cout << "handshake bytes: full " << full_bytes << ", resumed " << resumed_bytes << "\n";
  EXPECT_LT(resumed_bytes + 1000, full_bytes) << "a resumed handshake carries no certificates";
  EXPECT_FALSE(next_ticket.empty());
  // What a dry run predicts the resumption saves, within 5%.
  std::cout << "resumption saved " << full_bytes - resumed_bytes << " bytes, predicted " << saving
            << "\n";
  EXPECT_NEAR(static_cast<double>(saving), static_cast<double>(full_bytes - resumed_bytes),
              0.05 * static_cast<double>(full_bytes - resumed_bytes));
  EXPECT_EQ(predicted_saving, 0u) << "a resumed handshake predicts no further saving";

  // A damaged ticket, or one from another receiver process (other ticket
  // keys), costs a full handshake and nothing else.
  std::string damaged = ticket;
  damaged[damaged.size() / 2] ^= 0x55;
  bob.resume_session = damaged;
  uint64_t bytes = 0;
  exchange(bob, &bytes, &resumed);
  EXPECT_FALSE(resumed);
  auto other_server = start(options, handler);
  ASSERT_TRUE(other_server);
  ClientOptions elsewhere = client_options(other_server->port(), "127.0.0.1", "bob");
  elsewhere.resume_session = ticket;
  exchange(elsewhere, &bytes, &resumed);
  EXPECT_FALSE(resumed);

  // The refused sender gets no ticket: the receiver sends it only after it
  // has checked the client certificate.
  ClientOptions alice = client_options(server->port(), "127.0.0.1", "alice");
  auto refused = connect_channel(alice);
  if (refused) {
    (void)(*refused)->send_frame("hi");
    (void)(*refused)->receive_frame();
    EXPECT_TRUE((*refused)->resumption_ticket().empty());
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(peers, (std::vector<std::string>{"bob full", "bob resumed", "bob full", "bob full"}));
}

TEST_F(NetChannelTest, ClientRefusesAServerCertificateThatDoesNotNameTheHost) {
  // The receiver certificate names localhost and 127.0.0.1; 127.0.0.2 is
  // loopback too, but not in the certificate.
  ServerOptions options = server_options();
  options.listen_address = "127.0.0.2";
  std::atomic<int> sessions{0};
  auto server = start(options, [&](FrameChannel& channel) {
    ++sessions;
    echo(channel);
  });
  ASSERT_TRUE(server);
  auto client = connect_channel(client_options(server->port(), "127.0.0.2"));
  ASSERT_FALSE(client);
  const std::string& message = client.error().message();
  std::cout << "the client sees: " << message << "\n";
  EXPECT_EQ(client.error().code(), ErrorCode::kVerifyFailed) << message;
  EXPECT_TRUE(contains(message, "receiver 127.0.0.2:")) << message;
  EXPECT_TRUE(contains(message, "IP address mismatch")) << message;
  EXPECT_TRUE(contains(message, "DNS:localhost, IP:127.0.0.1")) << message;
  EXPECT_TRUE(contains(message, "--receiver-ip 127.0.0.2")) << message;
  // The server hears why from the client's alert.
  std::string line = log_line("rejected this receiver's certificate");
  EXPECT_TRUE(line.starts_with("warning: sender 127.0.0.1:")) << line;
  EXPECT_EQ(sessions.load(), 0);
}

TEST_F(NetChannelTest, ClientRefusesAServerCertificateFromAnotherCa) {
  ServerOptions options = server_options();
  options.identity = receiver(other());  // names localhost, but the other CA signed it
  auto server = start(options, [](FrameChannel& channel) { echo(channel); });
  ASSERT_TRUE(server);
  auto client = connect_channel(client_options(server->port()));
  ASSERT_FALSE(client);
  const std::string& message = client.error().message();
  std::cout << "the client sees: " << message << "\n";
  EXPECT_EQ(client.error().code(), ErrorCode::kVerifyFailed) << message;
  EXPECT_TRUE(contains(message, "receiver 127.0.0.1:" + std::to_string(server->port()) +
                                    ": TLS handshake failed: certificate verify failed"))
      << message;
  EXPECT_TRUE(contains(message, "is --ca the CA that signed the receiver's certificate?"))
      << message;
}

TEST_F(NetChannelTest, OversizedLengthPrefixIsRefusedBeforeAllocating) {
  struct Seen {
    size_t first_allocation = 0;
    ErrorCode code = ErrorCode::kInternal;
    std::string message;
    size_t largest_allocation = 0;
    milliseconds took{0};
  };
  std::promise<Seen> seen;
  ServerOptions options = server_options();
  options.limits.max_frame_bytes = kMiB;
  auto server = start(options, [&](FrameChannel& channel) {
    Seen result;
    // A legal 512 KiB frame shows that the measurement sees the allocation.
    t_largest_allocation = 0;
    auto first = channel.receive_frame();
    result.first_allocation = first ? t_largest_allocation : 0;
    // Then a prefix announcing 64 MiB, and nothing after it.
    t_largest_allocation = 0;
    auto start_time = Clock::now();
    auto second = channel.receive_frame();
    result.largest_allocation = t_largest_allocation;
    result.took = since(start_time);
    if (!second) {
      result.code = second.error().code();
      result.message = second.error().message();
    }
    seen.set_value(result);
  });
  ASSERT_TRUE(server);
  auto client = connect_channel(client_options(server->port()));
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->send_frame(random_bytes(512 * 1024, 3)));
  ASSERT_TRUE(net_testing::write_raw(**client, std::string("\x04\x00\x00\x00", 4)));

  auto future = seen.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Seen result = future.get();
  EXPECT_GE(result.first_allocation, 512u * 1024);
  EXPECT_EQ(result.code, ErrorCode::kProtocol) << result.message;
  EXPECT_TRUE(contains(result.message, "announced a frame of 67108864 bytes")) << result.message;
  EXPECT_LT(result.largest_allocation, size_t{kMiB});
  EXPECT_LT(result.took, milliseconds(5000));  // did not wait for a payload
  // The server closed the connection.
  auto after = (*client)->receive_frame();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable) << after.error().message();
  EXPECT_TRUE(contains(after.error().message(), "connection closed by peer"))
      << after.error().message();
}

TEST_F(NetChannelTest, FrameTrickledByteByByteIsCutAtTheIoTimeout) {
  std::promise<std::pair<Error, milliseconds>> seen;
  ServerOptions options = server_options();
  options.limits.io_timeout = milliseconds(500);
  auto server = start(options, [&](FrameChannel& channel) {
    auto start_time = Clock::now();
    auto frame = channel.receive_frame();
    seen.set_value(
        {frame ? Error(ErrorCode::kInternal, "got a frame") : frame.error(), since(start_time)});
  });
  ASSERT_TRUE(server);
  auto client = connect_channel(client_options(server->port()));
  ASSERT_TRUE(client) << client.error().message();
  // A 100-byte frame, one byte every 50 ms: each read makes progress, the
  // whole frame would take 5 s.
  ASSERT_TRUE(net_testing::write_raw(**client, std::string("\x00\x00\x00\x64", 4)));
  auto future = seen.get_future();
  for (int i = 0; i < 100; ++i) {
    if (future.wait_for(milliseconds(50)) == std::future_status::ready) break;
    if (!net_testing::write_raw(**client, "x")) break;
  }
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [error, took] = future.get();
  EXPECT_EQ(error.code(), ErrorCode::kTimeout) << error.message();
  EXPECT_TRUE(contains(error.message(), "not finished within 500 ms")) << error.message();
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(3000));
}

TEST_F(NetChannelTest, StalledHandshakeIsCutWhileOtherClientsAreServed) {
  ServerOptions options = server_options();
  options.limits.handshake_timeout = milliseconds(500);
  auto server = start(options, [](FrameChannel& channel) { echo(channel); });
  ASSERT_TRUE(server);
  auto start_time = Clock::now();
  RawConnection loris(server->port());  // connects, never sends a byte
  ASSERT_TRUE(loris.connected());

  // Served meanwhile.
  auto client = connect_channel(client_options(server->port()));
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->send_frame("ping"));
  auto pong = (*client)->receive_frame();
  ASSERT_TRUE(pong) << pong.error().message();
  EXPECT_EQ(*pong, "ping");

  EXPECT_TRUE(loris.wait_closed(milliseconds(5000)));
  milliseconds took = since(start_time);
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(5000));
  std::string line = log_line("did not finish within 500 ms");
  EXPECT_TRUE(line.starts_with("warning: sender 127.0.0.1:")) << line;
}

TEST_F(NetChannelTest, PendingHandshakesAreBounded) {
  ServerOptions options = server_options();
  options.max_sessions = 1;  // so at most 2 connections in their handshake
  options.limits.handshake_timeout = milliseconds(5000);
  auto server = start(options, [](FrameChannel& channel) { echo(channel); });
  ASSERT_TRUE(server);
  RawConnection first(server->port());
  RawConnection second(server->port());
  auto start_time = Clock::now();
  RawConnection third(server->port());
  ASSERT_TRUE(first.connected() && second.connected() && third.connected());
  // The third is closed at once, long before the handshake timeout.
  EXPECT_TRUE(third.wait_closed(milliseconds(4000)));
  EXPECT_LT(since(start_time), milliseconds(4000));
  std::string line = log_line("the limit is 2 x max_sessions = 2");
  EXPECT_TRUE(line.starts_with("warning: sender 127.0.0.1:")) << line;
}

TEST_F(NetChannelTest, ConnectionsBeyondMaxSessionsGetOnBusyAndTheServiceStaysUp) {
  ServerOptions options = server_options();
  options.max_sessions = 2;
  std::atomic<int> busy_calls{0};
  auto server = start(
      options, [](FrameChannel& channel) { echo(channel); },
      [&](FrameChannel& channel) {
        ++busy_calls;
        (void)channel.send_frame("busy");
      });
  ASSERT_TRUE(server);
  auto round_trip = [](FrameChannel& channel, const std::string& text) {
    if (!channel.send_frame(text)) return false;
    auto back = channel.receive_frame();
    return back && *back == text;
  };
  auto first = connect_channel(client_options(server->port()));
  auto second = connect_channel(client_options(server->port(), "localhost", "bob"));
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(round_trip(**first, "one"));
  ASSERT_TRUE(round_trip(**second, "two"));
  EXPECT_EQ(server->server().active_sessions(), 2u);

  auto third = connect_channel(client_options(server->port()));
  ASSERT_TRUE(third) << third.error().message();
  auto answer = (*third)->receive_frame();
  ASSERT_TRUE(answer) << answer.error().message();
  EXPECT_EQ(*answer, "busy");
  auto closed = (*third)->receive_frame();
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().code(), ErrorCode::kUnavailable) << closed.error().message();
  EXPECT_EQ(busy_calls.load(), 1);
  EXPECT_TRUE(contains(log_line("sessions are running already"), "answered busy"));

  // The first two still work; when one leaves, a new one is served.
  ASSERT_TRUE(round_trip(**second, "still"));
  first->reset();
  auto until = Clock::now() + milliseconds(5000);
  while (server->server().active_sessions() > 1 && Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(server->server().active_sessions(), 1u);
  auto fourth = connect_channel(client_options(server->port()));
  ASSERT_TRUE(fourth) << fourth.error().message();
  EXPECT_TRUE(round_trip(**fourth, "four"));
  EXPECT_EQ(busy_calls.load(), 1);
}

// A receiver that ends the session while the client is still sending says
// why in a last frame before it closes (with unread data: a reset). The
// client's send fails; its next receive_frame() returns that last frame,
// and only then the closed connection.
TEST_F(NetChannelTest, LastFrameOfAReceiverThatClosedIsKeptWhenASendFails) {
  auto server = start(server_options(), [&](FrameChannel& channel) {
    (void)channel.receive_frame();
    (void)channel.send_frame("the store is full");
  });
  ASSERT_TRUE(server);
  auto client = connect_channel(client_options(server->port()));
  ASSERT_TRUE(client) << client.error().message();
  const std::string chunk(kMiB, 'x');
  Status sent;
  for (int i = 0; i < 256 && sent; ++i) sent = (*client)->send_frame(chunk);
  ASSERT_FALSE(sent) << "the receiver never closed";
  EXPECT_EQ(sent.error().code(), ErrorCode::kUnavailable) << sent.error().message();
  auto last = (*client)->receive_frame();
  ASSERT_TRUE(last) << last.error().message();
  EXPECT_EQ(*last, "the store is full");
  auto after = (*client)->receive_frame();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable) << after.error().message();
}

TEST_F(NetChannelTest, StopCancelsASessionBlockedInReceiveAndJoinsIt) {
  ServerOptions options = server_options();
  options.limits.io_timeout = milliseconds(30000);
  std::promise<Error> seen;
  std::atomic<bool> handler_returned{false};
  auto bound = FrameServer::bind(options, [&](FrameChannel& channel) {
    auto ping = channel.receive_frame();
    if (ping) (void)channel.send_frame(*ping);
    auto blocked = channel.receive_frame();  // the client sends nothing more
    seen.set_value(blocked ? Error(ErrorCode::kInternal, "got a frame") : blocked.error());
    handler_returned = true;
  });
  ASSERT_TRUE(bound) << bound.error().message();
  FrameServer& server = **bound;
  std::thread runner([&] { server.run(); });

  auto client = connect_channel(client_options(server.port()));
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->send_frame("ping"));
  ASSERT_TRUE((*client)->receive_frame());
  std::this_thread::sleep_for(milliseconds(100));  // into its second receive_frame

  auto start_time = Clock::now();
  server.stop();
  milliseconds took = since(start_time);
  EXPECT_TRUE(handler_returned.load());  // stop() joined it
  EXPECT_LT(took, milliseconds(3000));
  runner.join();
  auto error = seen.get_future().get();
  EXPECT_EQ(error.code(), ErrorCode::kCancelled) << error.message();
  EXPECT_EQ(server.active_sessions(), 0u);

  auto after = (*client)->receive_frame();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable) << after.error().message();
  // New connections are refused.
  EXPECT_FALSE(connect_channel(client_options(server.port())));
}

TEST_F(NetChannelTest, StopOnSignalsStopsRunAndCancelsSessions) {
  ServerOptions options = server_options();
  options.limits.io_timeout = milliseconds(30000);
  std::promise<Error> seen;
  auto bound = FrameServer::bind(options, [&](FrameChannel& channel) {
    auto ping = channel.receive_frame();
    if (ping) (void)channel.send_frame(*ping);
    auto blocked = channel.receive_frame();
    seen.set_value(blocked ? Error(ErrorCode::kInternal, "got a frame") : blocked.error());
  });
  ASSERT_TRUE(bound) << bound.error().message();
  FrameServer& server = **bound;
  stop_on_signals(server, {SIGUSR2});
  auto run = std::async(std::launch::async, [&] { server.run(); });

  auto client = connect_channel(client_options(server.port()));
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE((*client)->send_frame("ping"));
  ASSERT_TRUE((*client)->receive_frame());

  auto start_time = Clock::now();
  ASSERT_EQ(::raise(SIGUSR2), 0);
  ASSERT_EQ(run.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_LT(since(start_time), milliseconds(3000));
  auto error = seen.get_future().get();
  EXPECT_EQ(error.code(), ErrorCode::kCancelled) << error.message();
  EXPECT_FALSE(log_line("stopping").empty());
}

TEST_F(NetChannelTest, BadCertificateFilesAndAddressesGiveClearErrors) {
  // Missing certificate file: named, kNotFound, before any connection.
  ClientOptions options = client_options(1);
  options.identity.certificate = good() / "missing.pem";
  auto missing = connect_channel(options);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().message();
  EXPECT_TRUE(contains(missing.error().message(), (good() / "missing.pem").string()));

  // A key that is not the certificate's.
  options = client_options(1);
  options.identity.private_key = good() / "sender-bob.key";
  auto mismatch = connect_channel(options);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(mismatch.error().message(),
                       "private key " + (good() / "sender-bob.key").string() +
                           " does not match certificate " + (good() / "sender-alice.pem").string()))
      << mismatch.error().message();

  // A CA file without certificates.
  options = client_options(1);
  options.identity.ca_certificates = good() / "ca.key";
  auto not_ca = connect_channel(options);
  ASSERT_FALSE(not_ca);
  EXPECT_EQ(not_ca.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(not_ca.error().message(), "CA certificates " + (good() / "ca.key").string()))
      << not_ca.error().message();

  // The server checks the same at bind().
  ServerOptions server = server_options();
  server.identity.private_key = good() / "ca.key";
  auto bad_server = FrameServer::bind(server, [](FrameChannel&) {});
  ASSERT_FALSE(bad_server);
  EXPECT_TRUE(contains(bad_server.error().message(), "does not match certificate"))
      << bad_server.error().message();

  server = server_options();
  server.listen_address = "localhost";
  auto by_name = FrameServer::bind(server, [](FrameChannel&) {});
  ASSERT_FALSE(by_name);
  EXPECT_EQ(by_name.error().code(), ErrorCode::kInvalidArgument);

  // A port in use, and a port nobody listens on.
  auto first = FrameServer::bind(server_options(), [](FrameChannel&) {});
  ASSERT_TRUE(first) << first.error().message();
  const uint16_t port = (*first)->port();
  server = server_options();
  server.port = port;
  auto second = FrameServer::bind(server, [](FrameChannel&) {});
  ASSERT_FALSE(second);
  EXPECT_TRUE(
      contains(second.error().message(), "cannot listen on 127.0.0.1:" + std::to_string(port)))
      << second.error().message();
  first->reset();
  auto refused = connect_channel(client_options(port));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable) << refused.error().message();
  EXPECT_TRUE(contains(refused.error().message(), "receiver 127.0.0.1:" + std::to_string(port) +
                                                      ": cannot connect: connection refused"))
      << refused.error().message();
}

}  // namespace
}  // namespace deltasync
