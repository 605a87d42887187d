#include "tests/support/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace deltasync::testing {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBufferBytes = 64 << 10;
constexpr auto kPollStep = std::chrono::milliseconds(50);
constexpr auto kDrainLimit = std::chrono::seconds(5);

bool set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

void reset_and_close(int fd) {
  linger lg{1, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

// One direction of a connection: bytes read from `from`, not yet written to `to`.
struct Direction {
  int from;
  int to;
  std::vector<char> buffer = std::vector<char>(kBufferBytes);
  size_t begin = 0;
  size_t end = 0;
  bool eof = false;        // `from` has no more to give
  bool shut_down = false;  // FIN passed on to `to`
  bool pending() const { return begin < end; }
};

}  // namespace

const char* fault_mode_name(FaultMode mode) {
  switch (mode) {
    case FaultMode::kNone:
      return "none";
    case FaultMode::kCut:
      return "cut";
    case FaultMode::kReset:
      return "reset";
    case FaultMode::kStall:
      return "stall";
  }
  return "?";
}

std::unique_ptr<FaultProxy> FaultProxy::start(uint16_t target_port, FaultPlan plan) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("fault proxy: socket");
    return nullptr;
  }
  int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !set_nonblocking(fd)) {
    std::perror("fault proxy: listen on 127.0.0.1:0");
    ::close(fd);
    return nullptr;
  }
  std::unique_ptr<FaultProxy> proxy(new FaultProxy(fd, ntohs(addr.sin_port), target_port, plan));
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->accept_loop(); });
  return proxy;
}

FaultProxy::FaultProxy(int listen_fd, uint16_t port, uint16_t target_port, FaultPlan plan)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port), plan_(plan) {}

FaultProxy::~FaultProxy() {
  stop();
}

void FaultProxy::stop() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(connections_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void FaultProxy::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(kPollStep.count()));
    if (ready <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard lock(mutex_);
    connections_.emplace_back([this, client] { relay(client); });
  }
}

void FaultProxy::relay(int client) {
  int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in target = loopback(target_port_);
  if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0 ||
      !set_nonblocking(server) || !set_nonblocking(client)) {
    std::perror("fault proxy: connect to the target");
    if (server >= 0) ::close(server);
    ::close(client);
    return;
  }
  Direction up{client, server};    // client -> server: where faults are counted
  Direction down{server, client};  // server -> client
  const bool count_down = plan_.direction == FaultDirection::kServerToClient;
  Direction& counted = count_down ? down : up;
  uint64_t read_counted = 0;  // bytes read in the counted direction
  bool armed = plan_.mode != FaultMode::kNone;
  std::optional<Clock::time_point> stall_until;

  // Reads what `d.from` has (at most `limit` bytes); false on a hard error.
  auto fill = [](Direction& d, size_t limit) -> bool {
    ssize_t n = ::recv(d.from, d.buffer.data(), std::min(limit, d.buffer.size()), 0);
    if (n > 0) {
      d.begin = 0;
      d.end = static_cast<size_t>(n);
    } else if (n == 0) {
      d.eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return false;
    }
    return true;
  };
  auto flush = [](Direction& d, std::atomic<uint64_t>& counter) -> bool {
    ssize_t n = ::send(d.to, d.buffer.data() + d.begin, d.end - d.begin, MSG_NOSIGNAL);
    if (n > 0) {
      d.begin += static_cast<size_t>(n);
      counter += static_cast<uint64_t>(n);
      if (d.begin == d.end) d.begin = d.end = 0;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return false;
    }
    return true;
  };

  while (!stopping_) {
    if (armed && read_counted == plan_.after_bytes && !counted.pending()) {
      armed = false;
      fired_ = true;
      if (plan_.mode == FaultMode::kReset) {
        reset_and_close(client);
        reset_and_close(server);
        return;
      }
      if (plan_.mode == FaultMode::kCut && count_down) {
        // The client got exactly after_bytes, then the connection ends.
        ::shutdown(client, SHUT_RDWR);
        ::close(client);
        ::close(server);
        return;
      }
      if (plan_.mode == FaultMode::kCut) {
        // The server gets every byte forwarded so far, then FIN; the client
        // just loses the connection.
        ::shutdown(client, SHUT_RDWR);
        ::close(client);
        ::shutdown(server, SHUT_WR);
        auto deadline = Clock::now() + kDrainLimit;
        char sink[4096];
        while (!stopping_ && Clock::now() < deadline) {
          pollfd p{server, POLLIN, 0};
          if (::poll(&p, 1, static_cast<int>(kPollStep.count())) <= 0) continue;
          ssize_t n = ::recv(server, sink, sizeof sink, 0);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
        }
        ::close(server);
        return;
      }
      stall_until = Clock::now() + plan_.stall;  // kStall
    }
    if (stall_until) {
      auto now = Clock::now();
      if (now < *stall_until) {
        std::this_thread::sleep_for(std::min<Clock::duration>(kPollStep, *stall_until - now));
        continue;
      }
      stall_until.reset();
    }
    for (Direction* d : {&up, &down}) {
      if (d->eof && !d->pending() && !d->shut_down) {
        ::shutdown(d->to, SHUT_WR);
        d->shut_down = true;
      }
    }
    if (up.shut_down && down.shut_down) break;

    size_t counted_limit = armed ? static_cast<size_t>(std::min<uint64_t>(
                                       kBufferBytes, plan_.after_bytes - read_counted))
                                 : kBufferBytes;
    size_t up_limit = count_down ? kBufferBytes : counted_limit;
    size_t down_limit = count_down ? counted_limit : kBufferBytes;
    bool read_client = !up.pending() && !up.eof && up_limit > 0;
    bool read_server = !down.pending() && !down.eof && down_limit > 0;
    pollfd fds[2] = {
        {client, static_cast<short>((read_client ? POLLIN : 0) | (down.pending() ? POLLOUT : 0)),
         0},
        {server, static_cast<short>((read_server ? POLLIN : 0) | (up.pending() ? POLLOUT : 0)), 0}};
    int ready = ::poll(fds, 2, static_cast<int>(kPollStep.count()));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const short any_in = POLLIN | POLLHUP | POLLERR;
    const short any_out = POLLOUT | POLLHUP | POLLERR;
    bool ok = true;
    if (read_client && (fds[0].revents & any_in)) {
      ok = fill(up, up_limit);
      if (ok && up.pending() && !count_down) read_counted += up.end;
    }
    if (ok && read_server && (fds[1].revents & any_in)) {
      ok = fill(down, down_limit);
      if (ok && down.pending() && count_down) read_counted += down.end;
    }
    if (ok && up.pending() && (fds[1].revents & any_out)) ok = flush(up, c2s_);
    if (ok && down.pending() && (fds[0].revents & any_out)) ok = flush(down, s2c_);
    if (!ok) break;
  }
  ::close(client);
  ::close(server);
}

}  // namespace deltasync::testing
