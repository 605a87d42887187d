// Test support: a child process that runs in the background (a deltarecvd
// under test), its stderr captured in a file the test can poll, killed with
// SIGKILL (or a given signal) when the object goes away.
//
// Thread safety: one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace deltasync::testing {

class BackgroundProcess {
 public:
  // Starts argv with stdout+stderr appended to `log_file`.
  static std::optional<BackgroundProcess> start(const std::vector<std::string>& argv,
                                                const std::filesystem::path& log_file);
  BackgroundProcess(BackgroundProcess&& other) noexcept;
  BackgroundProcess& operator=(BackgroundProcess&& other) noexcept;
  ~BackgroundProcess();

  pid_t pid() const { return pid_; }
  std::string log() const;
  // Waits until the log contains `text`; false on timeout or if the process died.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const;
  // Sends `signal` (0: none, just wait) and waits for the exit, SIGKILL after
  // `timeout`; returns the exit status (-signal if killed).
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  bool running() const;

 private:
  BackgroundProcess(pid_t pid, std::filesystem::path log) : pid_(pid), log_(std::move(log)) {}
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

}  // namespace deltasync::testing
