// The sender's own basis: the layer tars (by diff_id) and image configs of
// the images it has sent, kept in CACHE/layers (a LayerStore,
// common/store/layer_store.h) within a budget. When this machine's engine no
// longer holds the basis a site chose (pruned, or an ephemeral CI runner
// that restored CACHE), the chain found here still gives LOCAL mode: deltas
// computed here, no signatures crossing the link.
//
// Bad content never makes a wrong delta: a cached layer is trusted only as
// far as open_chain() has just proved it. Every layer of the chain is hashed
// against its diff_id and indexed again from the bytes read (the .idx on
// disk is not used), so a truncated or flipped file is found before any
// delta is coded against it; it is removed, logged, and the send goes on
// without the cache (REMOTE, the site's signatures). The site's own
// verification of every rebuilt layer stays the last line. One read of the
// basis layers per run is the price; the engine path pays a full export and
// a copy for the same thing.
//
// Several deltasend runs on one CACHE: LayerStore::open clears temp files
// of interrupted writes, which would break another run's write in
// progress, so a run holds an exclusive lock (CACHE/layers.lock) while it
// uses the cache; a second run at the same time works without it and says
// so in a warning.
//
// Ownership and thread safety: one per run, owned by SendSource, which
// calls it under its own mutex; no method may be called concurrently.
// CachedBasis owns its descriptors and indexes.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/io/file.h"
#include "common/store/layer_store.h"
#include "common/util/result.h"

namespace deltasync {

// --cache-budget when none is given.
inline constexpr uint64_t kDefaultSenderCacheBudget = 20ull << 30;

// A basis chain found in the cache, verified just now.
struct CachedBasis {
  std::vector<StoredLayer> layers;  // in chain order
  std::string config_bytes;         // empty when the config is not cached
};

// What keep_layer() did, summed over a run.
struct CacheKeepStats {
  uint64_t layers_linked = 0;
  uint64_t layers_copied = 0;
  uint64_t layers_already_held = 0;
  uint64_t bytes_linked = 0;
  uint64_t bytes_copied = 0;
};

class SenderLayerCache {
 public:
  // Opens CACHE/layers within `budget` bytes. Fails when the directory
  // cannot be made, or when another run holds the lock (the caller then
  // works without a cache).
  static Result<std::unique_ptr<SenderLayerCache>> open(const std::filesystem::path& cache_dir,
                                                        uint64_t budget);

  // Every layer of `chain`, each verified; nullopt when one is missing or
  // damaged (a damaged one is removed and a warning names it). The config
  // of `image_id` comes along when cached.
  std::optional<CachedBasis> open_chain(const std::vector<Digest>& chain,
                                        const std::string& image_id);
  // Keeps a layer file its reader verified against index.diff_id (`fd`
  // stays the caller's): a hard link when the workspace is on the same file
  // system, else a copy.
  Status keep_layer(int fd, const LayerIndex& index);
  Status keep_config(const Digest& image_id, std::string_view config);
  // Whether the layer is cached already (then it counts as used now).
  bool holds(const Digest& diff_id);
  // Evicts the least recently used layers until within the budget.
  Status enforce_budget() { return store_->enforce_budget(); }

  const CacheKeepStats& keep_stats() const { return stats_; }
  const LayerStore& store() const { return *store_; }

 private:
  SenderLayerCache(UniqueFd lock, std::unique_ptr<LayerStore> store)
      : lock_(std::move(lock)), store_(std::move(store)) {}
  UniqueFd lock_;  // flock(LOCK_EX) on CACHE/layers.lock, held for the run
  std::unique_ptr<LayerStore> store_;
  CacheKeepStats stats_;
};

}  // namespace deltasync
