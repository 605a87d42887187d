// The image a `deltasend --to` run ships, and what the sites of that run
// share so that sending to several sites costs little more than to one:
//   - the image is read from the engine once; each of its layers is copied
//     into a scratch workspace and indexed once;
//   - a basis image found in this machine's engine is opened and indexed
//     once, whichever sites use it; when the engine lacks it, the basis
//     chain comes from the sender's layer cache (sender/cache/), verified;
//   - once a site has loaded and verified the image, its layers and config
//     (and those of engine bases read on the way) go into that cache, as
//     hard links of the workspace's verified files where possible;
//   - layer streams coded against one basis (LOCAL mode) are coded once and
//     kept in spool files; every site whose inventory matches (same basis,
//     same layers already held, nothing to resume) sends those bytes.
//
// Ownership and thread safety: one SendSource per run, owned by the caller,
// outliving every site's session; all methods may be called from any thread
// (one mutex guards the workspace; an encoding runs outside it, once per
// key, while other callers of that key wait).
#pragma once

#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "common/layerstream/layer_stream.h"
#include "common/layerstream/layer_workspace.h"
#include "common/util/result.h"
#include "sender/cache/sender_layer_cache.h"
#include "sender/commands/open_images.h"
#include "sender/identity/source_identity.h"

namespace deltasync {

// A basis held by this machine (its engine, or the layer cache), its layers
// indexed.
struct LocalBasis {
  std::string source;        // "engine" or "cache"
  std::string image_id;      // the config digest; a "cache:" key when the config is not known
  std::string config_bytes;  // empty when the cache lacks the config
  std::vector<const LayerIndex*> layers;
  LayerFiles files;
};

// Layer streams coded once, for several sites: each layer's segments, in a
// spool file.
struct SpooledLayer {
  struct Segment {
    uint64_t first_entry = 0;
    uint64_t next_entry = 0;
    bool layer_done = false;
    uint64_t offset = 0;  // in the spool file
    uint64_t length = 0;
  };
  uint32_t target_index = 0;
  UniqueFd spool;
  std::vector<Segment> segments;
  LayerStreamStats stats;
};
struct SpooledStreams {
  Status status = ok_status();
  std::vector<SpooledLayer> layers;  // in the order they were coded
};

class SendSource {
 public:
  static Result<std::unique_ptr<SendSource>> open(const std::string& engine,
                                                  const std::string& image,
                                                  bool require_same_id = false,
                                                  const std::string& platform = "",
                                                  const std::filesystem::path& cache_dir = {},
                                                  uint64_t layer_cache_budget = 0);

  const ImageInfo& info() const { return target_->info(); }
  // The build host's distribution identity, read and proved once.
  const SourceIdentity& identity() const { return identity_; }
  // Layer `i` of the image: copied in and indexed on first use.
  Result<const LayerIndex*> target_layer(size_t i);
  // The workspace copy of a layer added by target_layer or local_basis.
  int fd(const Digest& diff_id);

  // An image in this machine's engine whose layers are `chain` (preferring
  // `reference` and `image_id`), its layers indexed; else the chain from the
  // layer cache, every layer verified; nullopt when neither has it.
  Result<std::optional<LocalBasis>> local_basis(const std::vector<Digest>& chain,
                                                const std::string& reference,
                                                const std::string& image_id);

  // After a site confirmed the image: keeps the image's layers and config,
  // and those of the engine bases read, in the layer cache (a no-op without
  // one), then keeps the cache within its budget. Once per run.
  Status remember_sent();
  // Null without a layer cache (--no-cache, or the cache is busy).
  const SenderLayerCache* layer_cache() const { return layer_cache_.get(); }

  // gzip -6 of the given layers of the image (what a registry pull moves),
  // computed in the background once per set of layers; 0 if unreadable.
  std::shared_future<uint64_t> pull_estimate(const std::vector<uint32_t>& layers);

  // The streams for `key`, coded by `encode` in the first caller; later
  // callers wait for them. `encode` gets an empty spool directory.
  std::shared_ptr<const SpooledStreams> spooled(
      const std::string& key,
      const std::function<SpooledStreams(const std::filesystem::path& dir)>& encode);

 private:
  SendSource(std::string engine, std::string platform)
      : opener_(std::move(engine), std::move(platform)) {}
  // The chain from the layer cache (under mutex_); nullopt when incomplete.
  std::optional<LocalBasis> cached_basis(const std::vector<Digest>& chain,
                                         const std::string& image_id);

  std::mutex mutex_;
  ImageOpener opener_;
  std::unique_ptr<ImageReader> target_;
  SourceIdentity identity_;
  std::unique_ptr<LayerWorkspace> workspace_;
  std::map<std::string, std::unique_ptr<ImageReader>> basis_images_;  // by image ID
  std::unique_ptr<SenderLayerCache> layer_cache_;
  std::map<Digest, StoredLayer> cached_layers_;  // opened from the cache, verified
  bool remembered_ = false;
  std::map<std::string, std::shared_future<std::shared_ptr<const SpooledStreams>>> spooled_;
  std::map<std::vector<uint32_t>, std::shared_future<uint64_t>> pull_estimates_;
  int spool_dirs_ = 0;
};

}  // namespace deltasync
