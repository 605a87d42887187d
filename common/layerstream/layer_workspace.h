// A scratch directory of uncompressed layer tars, by diff_id, with their
// file indexes. Both sides put the layers they need random access to here:
// basis layers (to read basis files for copies and deltas) and, on the
// sender, the target's missing layers (to read new files for deltas).
// Layers are copied in once, verified against their diff_id while copying
// (the image reader's stream fails at its end on a mismatch) and indexed in
// the same pass. The directory is removed with the workspace.
//
// Thread safety: add_* from one thread; fd()/index() are safe to read
// concurrently once added.
#pragma once

#include <filesystem>
#include <map>
#include <memory>

#include "common/image/image.h"
#include "common/index/layer_index.h"
#include "common/io/file.h"

namespace deltasync {

class LayerWorkspace {
 public:
  static Result<std::unique_ptr<LayerWorkspace>> create(const std::filesystem::path& parent,
                                                        std::string_view prefix);

  // Copies layer `i` of `image` in (once per diff_id) and indexes it.
  Result<const LayerIndex*> add_from_image(ImageReader& image, size_t i);
  // A new, empty file for a layer being rebuilt; adopt_rebuilt() registers it.
  Result<std::pair<std::filesystem::path, UniqueFd>> create_file(const Digest& diff_id);
  void adopt_rebuilt(const Digest& diff_id, UniqueFd fd, uint64_t size);

  bool has(const Digest& diff_id) const { return layers_.count(diff_id) != 0; }
  int fd(const Digest& diff_id) const;
  uint64_t size(const Digest& diff_id) const;
  const LayerIndex* index(const Digest& diff_id) const;
  const std::filesystem::path& dir() const { return dir_.path(); }
  // Where layer `diff_id`'s file is (created by create_file/add_from_image).
  std::filesystem::path path_of(const Digest& diff_id) const {
    return dir_.path() / (diff_id.hex() + ".tar");
  }
  uint64_t bytes_copied() const { return bytes_copied_; }

 private:
  explicit LayerWorkspace(TempDir dir) : dir_(std::move(dir)) {}
  struct Layer {
    UniqueFd fd;
    uint64_t size = 0;
    std::unique_ptr<LayerIndex> index;  // null for rebuilt layers
  };
  TempDir dir_;
  std::map<Digest, Layer> layers_;
  uint64_t bytes_copied_ = 0;
};

}  // namespace deltasync
