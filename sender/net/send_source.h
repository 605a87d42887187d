// The image a `deltasend --to` run ships, and what the sites of that run
// share so that sending to several sites costs little more than to one:
//   - the image is read from the engine once; each of its layers is copied
//     into a scratch workspace and indexed once;
//   - a basis image found in this machine's engine is opened and indexed
//     once, whichever sites use it;
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
#include "sender/commands/open_images.h"
#include "sender/identity/source_identity.h"

namespace deltasync {

// A basis image held by this machine's engine, its layers indexed.
struct LocalBasis {
  std::string image_id;
  std::string config_bytes;
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
                                                  const std::filesystem::path& cache_dir = {});

  const ImageInfo& info() const { return target_->info(); }
  // The build host's distribution identity, read and proved once.
  const SourceIdentity& identity() const { return identity_; }
  // Layer `i` of the image: copied in and indexed on first use.
  Result<const LayerIndex*> target_layer(size_t i);
  // The workspace copy of a layer added by target_layer or local_basis.
  int fd(const Digest& diff_id);

  // An image in this machine's engine whose layers are `chain` (preferring
  // `reference` and `image_id`), its layers indexed; nullopt when the engine
  // has none (or there is no engine).
  Result<std::optional<LocalBasis>> local_basis(const std::vector<Digest>& chain,
                                                const std::string& reference,
                                                const std::string& image_id);

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

  std::mutex mutex_;
  ImageOpener opener_;
  std::unique_ptr<ImageReader> target_;
  SourceIdentity identity_;
  std::unique_ptr<LayerWorkspace> workspace_;
  std::map<std::string, std::unique_ptr<ImageReader>> basis_images_;  // by image ID
  std::map<std::string, std::shared_future<std::shared_ptr<const SpooledStreams>>> spooled_;
  std::map<std::vector<uint32_t>, std::shared_future<uint64_t>> pull_estimates_;
  int spool_dirs_ = 0;
};

}  // namespace deltasync
