#include "common/system/service_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace deltasync {
namespace {

bool notify_socket_set() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return socket != nullptr && socket[0] != '\0';
}

// One line: a newline would start another assignment in the datagram.
std::string one_line(std::string_view text) {
  std::string line(text);
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

void send(const std::string& state) {
  if (!notify_socket_set()) return;
  // unset_environment = 0: the variables stay, so later calls (watchdog
  // pings, STOPPING=1) still reach systemd, and no thread changes environ.
  int rc = sd_notify(0, state.c_str());
  if (rc < 0) {
    spdlog::warn("systemd notification '{}' not delivered: {}", one_line(state),
                 std::strerror(-rc));
  }
}

}  // namespace

void notify_ready(std::string_view status) {
  std::string state = "READY=1";
  if (!status.empty()) state += "\nSTATUS=" + one_line(status);
  send(state);
}

void notify_status(std::string_view status) {
  send("STATUS=" + one_line(status));
}

void notify_stopping() {
  send("STOPPING=1");
}

void notify_watchdog() {
  send("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  if (!notify_socket_set()) return std::nullopt;
  uint64_t usec = 0;
  // > 0: WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  int rc = sd_watchdog_enabled(0, &usec);
  if (rc < 0) {
    spdlog::warn("systemd watchdog settings unreadable: {}", std::strerror(-rc));
    return std::nullopt;
  }
  if (rc == 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(usec));
}

}  // namespace deltasync
