// The service's background indexer: brings the images the site's engine
// holds into the store (layers verified, indexed, configs kept) at start-up
// and whenever the engine reports a new one, so that the first sender, pull
// round or `apply --store` against such a basis finds it there and does
// not wait for an export (issue 14).
//
//   - start-up: one scan of the engine's images (index_plan.h: tagged and
//     newest first, images the store holds skipped, within the indexer's
//     share of the store's budget);
//   - then: the engine's image events (EngineClient::wait_image_event: the
//     Docker API's /events, load/pull/import/tag), a scan after each; on an
//     engine without events here (containerd) the image list is polled
//     every `poll_interval` instead, and the log says so;
//   - imports go through BasisImports, shared with the sessions: a session
//     that needs an image being indexed waits for that import (and then
//     exports nothing), and the indexer skips what a session imported.
//
// It runs on a thread of its own with its own EngineClient, so it never
// holds up a session (a session only waits for it on the image both need).
// stop() (SIGTERM) sets the cancel flag that the engine calls and the layer
// copy check: an export or an idle event wait ends within about 100 ms and
// nothing half-written stays in the store.
//
// Ownership and thread safety: the indexer borrows `state` (its store,
// BasisImports, the status record), which must outlive it. start() and
// stop() from the owning thread; the destructor stops it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/engine/engine_client.h"
#include "receiver/service/service_state.h"

namespace deltasync {

struct IndexerOptions {
  std::string engine_address;
  unsigned share_percent = 50;             // of the store's budget (index_plan.h)
  std::chrono::seconds poll_interval{30};  // engines without events
  std::chrono::seconds event_window{60};   // one /events request
  std::chrono::seconds retry_interval{5};  // after an engine error
};

class EngineIndexer {
 public:
  EngineIndexer(IndexerOptions options, ServiceState& state);
  ~EngineIndexer();
  EngineIndexer(const EngineIndexer&) = delete;
  EngineIndexer& operator=(const EngineIndexer&) = delete;

  void start();
  void stop();

 private:
  void run();
  // One pass over the engine's images; false when the engine failed.
  bool scan(EngineClient& engine);
  // Sleeps up to `duration`; false when stopped meanwhile.
  bool sleep_for(std::chrono::seconds duration);
  void publish_status(const std::string& last);

  IndexerOptions options_;
  ServiceState& state_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  // Read and written by the indexer's thread only.
  std::string mode_ = "starting";
  uint64_t images_indexed_ = 0;
  uint64_t bytes_indexed_ = 0;
  size_t images_held_ = 0;
  size_t images_over_share_ = 0;
  std::set<std::string> reported_over_share_;
  std::string last_;
};

}  // namespace deltasync
