#include "receiver/service/service_state.h"

namespace deltasync {

std::unique_lock<std::timed_mutex> ImageLocks::lock(const std::string& image_id,
                                                    const std::function<void()>& waiting,
                                                    std::chrono::milliseconds interval) {
  std::shared_ptr<std::timed_mutex> mutex;
  {
    std::lock_guard guard(mutex_);
    auto& slot = locks_[image_id];
    if (!slot) slot = std::make_shared<std::timed_mutex>();
    mutex = slot;
  }
  std::unique_lock<std::timed_mutex> lock(*mutex, std::defer_lock);
  while (!lock.try_lock_for(interval)) {
    if (waiting) waiting();
  }
  // The map keeps the mutex alive; it is tiny and bounded by images seen.
  return lock;
}

void ServiceState::record_transfer(std::string line) {
  std::lock_guard guard(recent_mutex_);
  recent_.push_back(std::move(line));
  while (recent_.size() > 20) recent_.pop_front();
}

std::vector<std::string> ServiceState::recent_transfers() const {
  std::lock_guard guard(recent_mutex_);
  return {recent_.begin(), recent_.end()};
}

void ServiceState::record_poll(const std::string& reference, std::string line) {
  std::lock_guard guard(recent_mutex_);
  polls_[reference] = std::move(line);
}

std::vector<std::string> ServiceState::polls() const {
  std::lock_guard guard(recent_mutex_);
  std::vector<std::string> out;
  for (const auto& [reference, line] : polls_) out.push_back(line);
  return out;
}

}  // namespace deltasync
