// See watch_loop.h.
#include "receiver/pull/watch_loop.h"

#include <algorithm>
#include <map>
#include <random>

#include <spdlog/spdlog.h>

#include "common/system/service_notify.h"

namespace deltasync {

std::chrono::milliseconds next_poll_delay(std::chrono::seconds interval, int failures,
                                          double unit) {
  using std::chrono::milliseconds;
  double base_ms = static_cast<double>(std::chrono::duration_cast<milliseconds>(interval).count());
  if (failures > 0) {
    double cap = std::min(base_ms, 3600.0 * 1000);
    double backoff =
        std::min(cap, 30000.0 * static_cast<double>(1ull << std::min(failures - 1, 16)));
    base_ms = std::max(backoff, std::min(cap, 1000.0));
  }
  double jittered = base_ms * (0.8 + 0.4 * unit);
  return milliseconds(static_cast<int64_t>(std::max(jittered, 100.0)));
}

void WatchLoop::start() {
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void WatchLoop::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchLoop::run() {
  std::mt19937_64 random(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  using Clock = std::chrono::steady_clock;
  std::map<std::string, Clock::time_point> due;
  std::map<std::string, int> failures;
  // The first round of each reference is spread over a tenth of the interval.
  for (const auto& ref : options_.references)
    due[ref] = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(options_.interval * 0.1 * unit(random));
  spdlog::info("pull mode: watching {} reference{} every {}s", options_.references.size(),
               options_.references.size() == 1 ? "" : "s", options_.interval.count());
  for (;;) {
    auto next = std::min_element(due.begin(), due.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    {
      std::unique_lock lock(mutex_);
      if (wake_.wait_until(lock, next->second, [this] { return stopping_; })) return;
    }
    const std::string reference = next->first;
    PullOptions pull = options_.pull;
    pull.reference = reference;
    auto report = pull_once(pull);
    if (report) {
      failures[reference] = 0;
      if (report->outcome == "up to date")
        spdlog::debug("pull {}", report->describe());
      else
        spdlog::info("pull {}", report->describe());
      notify_status("pull " + report->describe());
    } else {
      ++failures[reference];
      spdlog::warn("pull {}: {} (try {} failed; next try with backoff)", reference,
                   report.error().message(), failures[reference]);
    }
    if (options_.on_round) options_.on_round(reference, report);
    due[reference] =
        Clock::now() + next_poll_delay(options_.interval, failures[reference], unit(random));
  }
}

}  // namespace deltasync
