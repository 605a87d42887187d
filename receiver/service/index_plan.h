// What the background indexer brings into the store, and in which order:
// the pure part of receiver/service/engine_indexer.h, kept apart so that it
// is tested without an engine.
//
// Order: tagged images first (what a sender names as a basis is almost
// always a tagged version of its app), newest first within each group,
// then by ID for a stable order. Budget: the indexer may fill the store up
// to its share of the disk budget (--index-engine-share, percent); an image
// is taken only when its estimated size fits in what is left of that share,
// so the indexer never pushes out layers sessions brought in. The estimate
// is the engine's whole image size plus tar overhead (headers and padding,
// up to 1 KiB per file on small files, counted here as 1/8 + 1 MiB): the
// engine does not say which of its layers are shared, so it errs towards
// indexing less, never more.
//
// Thread safety: pure functions on values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltasync {

struct IndexCandidate {
  std::string engine_id;
  std::string name;  // first tag, or the short ID, for the log
  bool tagged = false;
  int64_t created = 0;  // Unix seconds
  uint64_t size = 0;    // the engine's image size, bytes
  bool held = false;    // the store holds its config and every layer
};

// Candidates in indexing order (see above).
std::vector<IndexCandidate> index_order(std::vector<IndexCandidate> candidates);

// The bytes the indexer may fill the store up to: `share_percent` (1..100)
// of `budget`.
uint64_t index_share_limit(uint64_t budget, unsigned share_percent);

// What an image of `size` bytes is expected to take in the store.
uint64_t index_estimate(uint64_t size);

// Whether an image of `size` may be indexed into a store using `used` bytes
// under `limit` (index_share_limit).
bool fits_index_share(uint64_t used, uint64_t size, uint64_t limit);

}  // namespace deltasync
