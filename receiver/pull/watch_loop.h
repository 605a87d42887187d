// The service's pull mode: a thread that runs a pull round (pull_command.h)
// for each watched reference every `interval`, with ±20% jitter so a fleet
// started together does not poll in step, and on failure an exponential
// backoff (30 s doubling, at most the interval or one hour) so a dead
// registry is not hammered. Each round's outcome goes to the log (and
// systemd's status line); nothing a round does leaves a half-loaded image.
//
// Thread safety: start/stop from the owning thread; the loop runs on its own
// thread and uses its own registry and engine clients.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "receiver/pull/pull_command.h"

namespace deltasync {

struct WatchOptions {
  std::vector<std::string> references;  // REG/REPO:TAG each
  std::chrono::seconds interval{300};
  PullOptions pull;  // reference is set per round
  // Called after every round (tests, status); may be empty.
  std::function<void(const std::string& reference, const Result<PullReport>&)> on_round;
};

class WatchLoop {
 public:
  explicit WatchLoop(WatchOptions options) : options_(std::move(options)) {}
  ~WatchLoop() { stop(); }
  WatchLoop(const WatchLoop&) = delete;
  WatchLoop& operator=(const WatchLoop&) = delete;
  void start();
  // Wakes the loop and joins it; a round in progress finishes its current
  // request (each has a deadline) first.
  void stop();

 private:
  void run();
  WatchOptions options_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

// The next delay after a round: interval with jitter on success, backoff on
// the n-th failure in a row (n >= 1). `unit` in [0,1) is the random draw.
std::chrono::milliseconds next_poll_delay(std::chrono::seconds interval, int failures, double unit);

}  // namespace deltasync
