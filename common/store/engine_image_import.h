// Bringing an engine image into the store: its layers the store lacks and
// its config, read from one export of the image (every layer verified
// against its diff_id as it streams, and indexed in the same pass). This is
// how a basis gets into the store once, so that later updates against it
// (network sessions, pull mode, apply with a store) start without an export.
//
// Thread safety: uses the borrowed engine client from the calling thread;
// the store may be shared (its methods are thread-safe).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"
#include "common/store/layer_store.h"

namespace deltasync {

struct EngineImageImport {
  Digest config_digest;
  std::string config;  // exact bytes
  std::vector<Digest> chain;
  size_t layers_imported = 0;  // 0: the store held every layer already
  uint64_t bytes_imported = 0;
};

// `expected_chain` (may be empty: anything) must equal the exported image's
// diff_ids, else kEngine "changed meanwhile". The config is written to the
// store, and the engine's Id linked to it (LayerStore::link_engine_image).
// `cancel` (borrowed, may be null): once true, the layer being copied stops
// within one read with kCancelled and nothing half-written stays in the
// store (the export itself stops through EngineOptions::cancel).
Result<EngineImageImport> import_engine_image(LayerStore& store, EngineClient& engine,
                                              const std::string& engine_id,
                                              const std::vector<Digest>& expected_chain = {},
                                              const std::atomic<bool>* cancel = nullptr);

}  // namespace deltasync
