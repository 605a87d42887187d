// One import of an engine image into the store at a time, whoever asks: the
// sessions (a basis they need) and the background indexer (every image the
// engine holds). A second caller for the same image waits for the first and
// then finds the image held, so an image is never exported twice at once.
// Also counts the exports each side made, for the status reply (and the
// tests: a session that found its basis indexed exported nothing).
//
// Thread safety: every method may be called from several threads at once.
// Holds no reference to the store or the engine; both are passed per call.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"
#include "common/store/engine_image_import.h"
#include "common/store/layer_store.h"
#include "receiver/service/image_locks.h"

namespace deltasync {

class BasisImports {
 public:
  enum class Who { kSession, kIndexer };

  struct Outcome {
    bool exported = false;  // false: the store held it (maybe after waiting)
    Digest config_digest;
    std::string config;        // exact bytes
    EngineImageImport import;  // when exported
  };

  // The config digest of engine image `engine_id` when the store holds its
  // config and every layer of `chain` (non-empty), else nullopt. The
  // classic store's ID is the config digest; other IDs go through the
  // store's links (LayerStore::config_of_engine_image).
  static std::optional<Digest> held(const LayerStore& store, const std::string& engine_id,
                                    const std::vector<Digest>& chain);

  // Makes the store hold engine image `engine_id` (whose diff_ids must be
  // `chain`): returns at once when it does; else takes the image's lock
  // (calling `on_wait` once if another caller holds it), looks again, and
  // only then exports (calling `on_export` first). `cancel` as in
  // import_engine_image.
  Result<Outcome> ensure(LayerStore& store, EngineClient& engine, const std::string& engine_id,
                         const std::vector<Digest>& chain, Who who,
                         const std::function<void()>& on_wait = {},
                         const std::function<void()>& on_export = {},
                         const std::atomic<bool>* cancel = nullptr);

  uint32_t exports(Who who) const {
    return who == Who::kSession ? session_exports_.load() : indexer_exports_.load();
  }

 private:
  ImageLocks locks_;
  std::atomic<uint32_t> session_exports_{0};
  std::atomic<uint32_t> indexer_exports_{0};
};

}  // namespace deltasync
