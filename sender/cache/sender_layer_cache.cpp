#include "sender/cache/sender_layer_cache.h"

#include <fcntl.h>
#include <sys/file.h>

#include <spdlog/spdlog.h>

namespace deltasync {

namespace fs = std::filesystem;

Result<std::unique_ptr<SenderLayerCache>> SenderLayerCache::open(const fs::path& cache_dir,
                                                                 uint64_t budget) {
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec)
    return make_error(ErrorCode::kIo, "layer cache: create " + cache_dir.string() + ": " +
                                          ec.message() + " (give --cache-dir, or --no-cache)");
  const fs::path lock_path = cache_dir / "layers.lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(errno_error(errno, "layer cache: open " + lock_path.string()));
  UniqueFd lock(fd);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return make_error(ErrorCode::kUnavailable,
                        "layer cache " + (cache_dir / "layers").string() +
                            ": another deltasend run is using it (this run goes without it; "
                            "give each parallel job its own --cache-dir to keep LOCAL mode)");
    return std::unexpected(errno_error(errno, "layer cache: lock " + lock_path.string()));
  }
  DS_ASSIGN_OR_RETURN(auto store,
                      with_context(LayerStore::open(cache_dir / "layers", budget), "layer cache"));
  return std::unique_ptr<SenderLayerCache>(new SenderLayerCache(std::move(lock), std::move(store)));
}

std::optional<CachedBasis> SenderLayerCache::open_chain(const std::vector<Digest>& chain,
                                                        const std::string& image_id) {
  for (const Digest& d : chain)
    if (!store_->has(d)) return std::nullopt;
  CachedBasis basis;
  for (const Digest& d : chain) {
    auto layer = store_->open_layer_verified(d);
    if (!layer) {
      spdlog::warn("layer cache: {}; not using the cache for this basis", layer.error().message());
      return std::nullopt;
    }
    basis.layers.push_back(std::move(*layer));
  }
  if (auto id = Digest::parse(image_id)) {
    if (auto config = store_->read_config(*id)) basis.config_bytes = std::move(*config);
  }
  return basis;
}

Status SenderLayerCache::keep_layer(int fd, const LayerIndex& index) {
  DS_ASSIGN_OR_RETURN(LayerStore::AdoptHow how,
                      with_context(store_->adopt_verified(index.diff_id, fd, index),
                                   "layer cache: keeping layer " + index.diff_id.short_str()));
  switch (how) {
    case LayerStore::AdoptHow::kAlreadyHeld:
      ++stats_.layers_already_held;
      break;
    case LayerStore::AdoptHow::kLinked:
      ++stats_.layers_linked;
      stats_.bytes_linked += index.tar_size;
      break;
    case LayerStore::AdoptHow::kCopied:
      ++stats_.layers_copied;
      stats_.bytes_copied += index.tar_size;
      break;
  }
  return ok_status();
}

bool SenderLayerCache::holds(const Digest& diff_id) {
  if (!store_->mark_used(diff_id)) return false;
  ++stats_.layers_already_held;
  return true;
}

Status SenderLayerCache::keep_config(const Digest& image_id, std::string_view config) {
  if (store_->read_config(image_id)) return ok_status();
  return with_context(store_->write_config(image_id, config), "layer cache");
}

}  // namespace deltasync
