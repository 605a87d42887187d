// Test support: a TCP proxy on 127.0.0.1 that injects one fault per
// connection, to test what a cut, reset or stalled link does to a session.
// It knows nothing of TLS: it counts and forwards bytes.
//
//   auto proxy = FaultProxy::start(receiver_port, {FaultMode::kCut, 100000});
//   run deltasend --to 127.0.0.1:<proxy->port()>
//
// Faults (counted on the client -> server bytes of each connection, or on
// the server -> client bytes with FaultPlan::direction = kServerToClient):
//   kNone   forward everything;
//   kCut    after exactly `after_bytes` have been forwarded to the server:
//           FIN to the server (which still reads every byte before it), then
//           close both sides; the server side is drained for up to 5 s first so
//           that closing it cannot turn into a reset;
//   kReset  after `after_bytes`: SO_LINGER 0 and close both sides (RST; the
//           server may lose what it had not read yet);
//   kStall  after `after_bytes`: forward nothing either way for `stall`, then
//           forward normally again.
// Counted server -> client, kCut closes both sides once exactly
// `after_bytes` have reached the client (e.g. a blob download cut mid-body:
// the client sees EOF).
//
// Plain POSIX sockets; one thread accepts, one thread per connection relays
// both directions with poll() and non-blocking sockets.
//
// Thread safety: start/stop and the counters may be used from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace deltasync::testing {

enum class FaultMode { kNone, kCut, kReset, kStall };
enum class FaultDirection { kClientToServer, kServerToClient };

struct FaultPlan {
  FaultMode mode = FaultMode::kNone;
  uint64_t after_bytes = 0;  // bytes forwarded (in `direction`) before the fault
  std::chrono::milliseconds stall{0};
  FaultDirection direction = FaultDirection::kClientToServer;
};

const char* fault_mode_name(FaultMode mode);

class FaultProxy {
 public:
  // Listens on 127.0.0.1:0 and forwards to 127.0.0.1:target_port; nullptr
  // (with a message on stderr) if the listener cannot be set up.
  static std::unique_ptr<FaultProxy> start(uint16_t target_port, FaultPlan plan);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  uint16_t port() const { return port_; }
  // Bytes forwarded, over all connections.
  uint64_t client_to_server_bytes() const { return c2s_.load(); }
  uint64_t server_to_client_bytes() const { return s2c_.load(); }
  // True once the fault has been applied on some connection.
  bool fault_fired() const { return fired_.load(); }
  // Stops accepting, closes every connection, joins the threads.
  void stop();

 private:
  FaultProxy(int listen_fd, uint16_t port, uint16_t target_port, FaultPlan plan);
  void accept_loop();
  void relay(int client_fd);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  uint16_t target_port_ = 0;
  FaultPlan plan_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> c2s_{0};
  std::atomic<uint64_t> s2c_{0};
  std::atomic<bool> fired_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<std::thread> connections_;
};

}  // namespace deltasync::testing
