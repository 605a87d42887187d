#include "receiver/service/image_locks.h"

namespace deltasync {

std::unique_lock<std::timed_mutex> ImageLocks::lock(const std::string& name,
                                                    const std::function<void()>& waiting,
                                                    std::chrono::milliseconds interval) {
  std::shared_ptr<std::timed_mutex> mutex;
  {
    std::lock_guard guard(mutex_);
    auto& slot = locks_[name];
    if (!slot) slot = std::make_shared<std::timed_mutex>();
    mutex = slot;
  }
  std::unique_lock<std::timed_mutex> lock(*mutex, std::defer_lock);
  while (!lock.try_lock_for(interval)) {
    if (waiting) waiting();
  }
  return lock;
}

}  // namespace deltasync
