// What the sessions of one deltarecvd share: the store, the engine address,
// one-transfer-per-image locks, one-import-per-basis (BasisImports, shared
// with the background indexer), and the record of recent transfers and of
// the indexer that `deltasend status` shows.
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
#include "receiver/service/basis_imports.h"
#include "receiver/service/image_locks.h"

namespace deltasync {

struct ServiceState {
  LayerStore* store = nullptr;
  std::string engine_address;
  int encode_threads = 2;
  ImageLocks image_locks;
  BasisImports basis_imports;
  std::atomic<uint64_t> next_session_id{1};
  std::atomic<uint32_t> active_sessions{0};

  void record_transfer(std::string line);
  std::vector<std::string> recent_transfers() const;
  // Pull mode: the last poll of each watched reference, for `deltasend status`.
  void record_poll(const std::string& reference, std::string line);
  std::vector<std::string> polls() const;
  // The background indexer's one-line summary ("" when it is off).
  void record_indexer(std::string line);
  std::string indexer() const;

 private:
  std::map<std::string, std::string> polls_;
  std::string indexer_;
  mutable std::mutex recent_mutex_;
  std::deque<std::string> recent_;
};

}  // namespace deltasync
