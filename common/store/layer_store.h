// The receiver's store: verified layer tars and their indexes, by diff_id,
// plus the checkpoints of interrupted transfers. It is what lets an update
// start without exporting the basis from the engine again, and a cut
// transfer resume where it stopped.
//
//   ROOT/layers/<hex>.tar    a layer tar whose sha256 is its diff_id
//   ROOT/layers/<hex>.idx    its index (common/index/index_codec.h)
//   ROOT/partial/<image>/<layer>.tar, .ckpt   a layer being rebuilt: bytes
//                            synced so far and how many entries they hold
//   ROOT/configs/<hex>.json  image configs we have seen (basis configs)
//   ROOT/tmp/                scratch; emptied when the store opens
//
// Content-addressed: the only names on disk are hex digests we computed, so
// nothing a peer sends (tar paths included) ever becomes a path. Every file
// is written to a temp name, synced, then renamed, so a crash leaves either
// the old state or the new one. Layers beyond the disk budget are evicted,
// least recently used first, except those a session has pinned. Partial
// transfers nobody resumed are dropped too: always after
// kAbandonedPartialAge without a write, and, when evicting every unpinned
// layer still leaves the store over its budget, after kIdlePartialAge
// (oldest first). A layer is cheap to get back (the site's own engine); a
// partial transfer may have cost hours of a thin link, so it goes last.
//
// The sender keeps one too (sender/cache/sender_layer_cache.h): the layers
// it has sent, as LOCAL-mode bases. It brings verified workspace files in
// with adopt_verified() (a hard link where it can) and opens them with
// open_layer_verified(), which trusts nothing on disk.
//
// Thread safety: all methods may be called from several sessions at once.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "common/index/layer_index.h"
#include "common/io/file.h"

namespace deltasync {

struct StoredLayer {
  UniqueFd fd;
  uint64_t size = 0;
  std::shared_ptr<const LayerIndex> index;
};

struct LayerCheckpoint {
  uint64_t entries = 0;
  uint64_t tar_bytes = 0;
};

class LayerStore {
 public:
  // kOwner (the service, the sender's cache) empties ROOT/tmp and removes
  // the temp files of interrupted renames; kShared (a one-off `deltarecvd
  // pull` beside a running service) leaves them, since they may be another
  // process's work in progress.
  enum class OpenMode { kOwner, kShared };
  static Result<std::unique_ptr<LayerStore>> open(const std::filesystem::path& root,
                                                  uint64_t budget_bytes,
                                                  OpenMode mode = OpenMode::kOwner);

  bool has(const Digest& diff_id) const;
  // has(), and counts as a use for the LRU order when it is held.
  bool mark_used(const Digest& diff_id);
  // Opens a stored layer with its index (indexing it if the index is missing).
  Result<StoredLayer> open_layer(const Digest& diff_id);
  // Copies a layer in from a stream that verifies itself against `diff_id`
  // (an ImageReader layer), indexing it in the same pass.
  Result<StoredLayer> import(ByteSource& verified_tar, const Digest& diff_id,
                             std::string_view name);
  // Moves a rebuilt layer file, already verified against `diff_id`, in.
  Status adopt_rebuilt(const Digest& diff_id, const std::filesystem::path& file);
  // Brings in a layer file its writer verified against `diff_id` and indexed
  // (`index`), leaving the caller's file (`fd`, still owned by the caller)
  // as it is: synced, then hard-linked in when it is on the store's file
  // system, else copied (temp + fsync + rename).
  enum class AdoptHow { kAlreadyHeld, kLinked, kCopied };
  Result<AdoptHow> adopt_verified(const Digest& diff_id, int fd, const LayerIndex& index);
  // open_layer() trusting nothing on disk: hashes the whole tar against
  // `diff_id` and indexes it again in the same pass (the .idx is not read).
  // A file that no longer matches (truncated, flipped bits) is removed and
  // the error says so. Costs one read of the layer.
  Result<StoredLayer> open_layer_verified(const Digest& diff_id);

  // Image configs by image ID (to decode a config coded against a basis).
  Status write_config(const Digest& image_id, std::string_view config);
  std::optional<std::string> read_config(const Digest& image_id) const;
  // Engines whose image ID is not the config digest (Docker's containerd
  // image store: the manifest digest) need the link from one to the other,
  // which their API does not give: recorded when this site exports or loads
  // an image. Content-addressed on both sides, so a link never goes stale.
  Status link_engine_image(const std::string& engine_id, const Digest& config_digest);
  std::optional<Digest> config_of_engine_image(const std::string& engine_id) const;

  // Partial transfers of `image_id`.
  std::filesystem::path partial_file(const Digest& image_id, const Digest& diff_id) const;
  std::optional<LayerCheckpoint> read_checkpoint(const Digest& image_id,
                                                 const Digest& diff_id) const;
  Status write_checkpoint(const Digest& image_id, const Digest& diff_id,
                          const LayerCheckpoint& checkpoint);
  void drop_partial(const Digest& image_id);

  // Keeps layers in use out of eviction while a session runs.
  void pin(const Digest& diff_id);
  void unpin(const Digest& diff_id);
  // Drops abandoned partial transfers, then evicts unpinned layers (oldest
  // use first), then idle partial transfers, until within the budget.
  Status enforce_budget();

  static constexpr std::chrono::hours kAbandonedPartialAge{24 * 7};
  static constexpr std::chrono::hours kIdlePartialAge{1};

  uint64_t bytes_used() const;
  uint64_t budget() const { return budget_; }
  size_t layer_count() const;
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path tmp_dir() const { return root_ / "tmp"; }

 private:
  LayerStore(std::filesystem::path root, uint64_t budget)
      : root_(std::move(root)), budget_(budget) {}
  std::filesystem::path tar_path(const Digest& d) const;
  std::filesystem::path index_path(const Digest& d) const;
  Status write_index(const LayerIndex& index);
  void touch(const Digest& d);

  std::filesystem::path root_;
  uint64_t budget_;
  mutable std::mutex mutex_;
  std::map<Digest, int> pins_;
};

// Parses "20G", "512M", "1T", "1000000" into bytes.
Result<uint64_t> parse_byte_size(std::string_view text);

}  // namespace deltasync
