// systemd notifications: with NOTIFY_SOCKET pointing at a real AF_UNIX
// datagram socket (as systemd's /run/systemd/notify is), each call must send
// exactly the sd_notify assignments; status texts stay one line; the watchdog
// interval follows WATCHDOG_USEC / WATCHDOG_PID; and without NOTIFY_SOCKET
// (or with an unreachable one) every call is a harmless no-op.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "common/io/file.h"
#include "common/system/service_notify.h"

namespace deltasync {
namespace {

using std::chrono::microseconds;

// Restores (or removes) an environment variable when the test ends.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A bound AF_UNIX datagram socket standing in for systemd's notify socket.
// `address` is a file path, or "@name" for the abstract namespace (both are
// valid NOTIFY_SOCKET values).
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& address) : address_(address) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      ADD_FAILURE() << "socket: " << std::strerror(errno);
      return;
    }
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (address.size() >= sizeof(sa.sun_path)) {
      ADD_FAILURE() << "socket path too long: " << address;
      return;
    }
    std::memcpy(sa.sun_path, address.data(), address.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
    if (address[0] == '@') {
      sa.sun_path[0] = '\0';  // abstract: no trailing NUL counted
    } else {
      len += 1;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      ADD_FAILURE() << "bind " << address << ": " << std::strerror(errno);
    }
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& address() const { return address_; }

  // The next datagram, or nothing if none arrives within `wait`.
  std::optional<std::string> receive(std::chrono::milliseconds wait) {
    pollfd pfd{fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(wait.count()));
    if (ready <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0) {
      ADD_FAILURE() << "recv: " << std::strerror(errno);
      return std::nullopt;
    }
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string address_;
  int fd_ = -1;
};

constexpr std::chrono::milliseconds kArrives{2000};
constexpr std::chrono::milliseconds kSilence{200};

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short parent: unix socket paths are limited to 107 bytes.
    auto dir = TempDir::create("/tmp", "notify-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    dir_.emplace(std::move(*dir));
  }
  std::string socket_path() const { return (dir_->path() / "notify").string(); }

  std::optional<TempDir> dir_;
};

TEST_F(ServiceNotifyTest, ReadySendsReadyAndStatus) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  notify_ready("x");
  EXPECT_EQ(socket.receive(kArrives), "READY=1\nSTATUS=x");
  EXPECT_EQ(socket.receive(kSilence), std::nullopt) << "one call, one datagram";
}

TEST_F(ServiceNotifyTest, ReadyWithoutStatus) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  notify_ready("");
  EXPECT_EQ(socket.receive(kArrives), "READY=1");
}

TEST_F(ServiceNotifyTest, StatusStoppingWatchdog) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  notify_status("listening on 0.0.0.0:7443, 2 sessions");
  EXPECT_EQ(socket.receive(kArrives), "STATUS=listening on 0.0.0.0:7443, 2 sessions");
  notify_watchdog();
  EXPECT_EQ(socket.receive(kArrives), "WATCHDOG=1");
  notify_stopping();
  EXPECT_EQ(socket.receive(kArrives), "STOPPING=1");
}

TEST_F(ServiceNotifyTest, StatusIsOneLine) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  // A newline must not smuggle in another assignment (here READY=1).
  notify_status("bad peer\nREADY=1");
  EXPECT_EQ(socket.receive(kArrives), "STATUS=bad peer READY=1");
}

TEST_F(ServiceNotifyTest, AbstractNamespaceSocket) {
  std::string name = "@deltasync-notify-test-" + std::to_string(::getpid());
  NotifySocket socket(name);
  ScopedEnv env("NOTIFY_SOCKET", name.c_str());
  notify_ready("abstract");
  EXPECT_EQ(socket.receive(kArrives), "READY=1\nSTATUS=abstract");
}

TEST_F(ServiceNotifyTest, EnvironmentIsKept) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  notify_ready("first");
  ASSERT_EQ(socket.receive(kArrives), "READY=1\nSTATUS=first");
  // Later notifications (watchdog pings) still need NOTIFY_SOCKET.
  ASSERT_NE(std::getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_EQ(std::string(std::getenv("NOTIFY_SOCKET")), socket.address());
  notify_watchdog();
  EXPECT_EQ(socket.receive(kArrives), "WATCHDOG=1");
}

TEST_F(ServiceNotifyTest, UnsetSocketIsANoOp) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", nullptr);
  ScopedEnv usec("WATCHDOG_USEC", "60000000");
  ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
  notify_ready("x");
  notify_status("y");
  notify_watchdog();
  notify_stopping();
  EXPECT_EQ(socket.receive(kSilence), std::nullopt);
  // No socket to ping: no watchdog, whatever WATCHDOG_USEC says.
  EXPECT_EQ(watchdog_interval(), std::nullopt);
}

TEST_F(ServiceNotifyTest, UnreachableSocketIsHarmless) {
  // Nothing bound there: sd_notify fails (ENOENT); the call only logs.
  std::string missing = socket_path() + "-missing";
  ScopedEnv env("NOTIFY_SOCKET", missing.c_str());
  notify_ready("x");
  notify_watchdog();
  notify_stopping();
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(ServiceNotifyTest, WatchdogInterval) {
  NotifySocket socket(socket_path());
  ScopedEnv env("NOTIFY_SOCKET", socket.address().c_str());
  {
    ScopedEnv usec("WATCHDOG_USEC", "60000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
    EXPECT_EQ(watchdog_interval(), std::optional<microseconds>(microseconds(60'000'000)));
  }
  {
    // WATCHDOG_PID may be left out; then the setting is for us.
    ScopedEnv usec("WATCHDOG_USEC", "2500000");
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    EXPECT_EQ(watchdog_interval(), std::optional<microseconds>(microseconds(2'500'000)));
  }
  {
    // Meant for another process (a parent that did not unset it).
    ScopedEnv usec("WATCHDOG_USEC", "60000000");
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str());
    EXPECT_EQ(watchdog_interval(), std::nullopt);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", nullptr);
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    EXPECT_EQ(watchdog_interval(), std::nullopt);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", "not-a-number");
    ScopedEnv pid("WATCHDOG_PID", nullptr);
    EXPECT_EQ(watchdog_interval(), std::nullopt);
  }
}

}  // namespace
}  // namespace deltasync
