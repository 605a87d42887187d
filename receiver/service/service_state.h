// What the sessions of one deltarecvd share: the store, the engine address,
// one-transfer-per-image locks, and the record of recent transfers that
// `deltasend status` shows.
//
// Thread safety: every member is safe to use from several sessions.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/store/layer_store.h"

namespace deltasync {

class ImageLocks {
 public:
  // Locks `image_id`; while another session holds it, calls `waiting` every
  // `interval` (the session sends a heartbeat) until it is free.
  std::unique_lock<std::timed_mutex> lock(const std::string& image_id,
                                          const std::function<void()>& waiting,
                                          std::chrono::milliseconds interval);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::timed_mutex>> locks_;
};

struct ServiceState {
  LayerStore* store = nullptr;
  std::string engine_address;
  int encode_threads = 2;
  ImageLocks image_locks;
  std::atomic<uint64_t> next_session_id{1};
  std::atomic<uint32_t> active_sessions{0};

  void record_transfer(std::string line);
  std::vector<std::string> recent_transfers() const;
  // Pull mode: the last poll of each watched reference, for `deltasend status`.
  void record_poll(const std::string& reference, std::string line);
  std::vector<std::string> polls() const;

 private:
  std::map<std::string, std::string> polls_;
  mutable std::mutex recent_mutex_;
  std::deque<std::string> recent_;
};

}  // namespace deltasync
