// Named locks held across long work: one transfer per image (the sessions),
// one import per engine image (BasisImports). A waiter is called back at an
// interval, so a session can send heartbeats while it waits.
//
// Thread safety: lock() may be called from any thread; the returned lock
// belongs to the caller's thread. The map keeps every mutex it made (tiny,
// bounded by the images seen).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace deltasync {

class ImageLocks {
 public:
  // Locks `name`; while another holder has it, calls `waiting` every
  // `interval` until it is free.
  std::unique_lock<std::timed_mutex> lock(const std::string& name,
                                          const std::function<void()>& waiting,
                                          std::chrono::milliseconds interval);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::timed_mutex>> locks_;
};

}  // namespace deltasync
