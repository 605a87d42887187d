#include "sender/net/send_source.h"

#include "common/codec/compression.h"
#include "common/engine/image_match.h"

#include <spdlog/spdlog.h>

namespace deltasync {

namespace {

uint64_t gzip_size_of(const std::vector<std::pair<int, uint64_t>>& layers) {
  uint64_t total = 0;
  for (const auto& [fd, size] : layers) {
    CountingSink counter;
    auto gzip = make_gzip_sink(counter, 6);
    FileSource source(fd, 0, size, "layer");
    if (!copy_exact(source, *gzip, size, "layer") || !gzip->finish()) return 0;
    total += counter.count();
  }
  return total;
}

}  // namespace

Result<std::unique_ptr<SendSource>> SendSource::open(const std::string& engine,
                                                     const std::string& image, bool require_same_id,
                                                     const std::string& platform,
                                                     const std::filesystem::path& cache_dir,
                                                     uint64_t layer_cache_budget) {
  std::unique_ptr<SendSource> source(new SendSource(engine, platform));
  DS_ASSIGN_OR_RETURN(source->target_, source->opener_.open(image));
  DS_ASSIGN_OR_RETURN(source->identity_,
                      prepare_source_identity(*source->target_, require_same_id, cache_dir));
  DS_ASSIGN_OR_RETURN(source->workspace_,
                      LayerWorkspace::create(default_temp_parent(), "deltasend-"));
  if (layer_cache_budget > 0 && !cache_dir.empty()) {
    // A cache only saves bytes: a send never fails for want of one.
    auto cache = SenderLayerCache::open(cache_dir, layer_cache_budget);
    if (cache) {
      source->layer_cache_ = std::move(*cache);
    } else {
      spdlog::warn("{}", cache.error().message());
    }
  }
  return source;
}

Result<const LayerIndex*> SendSource::target_layer(size_t i) {
  std::lock_guard lock(mutex_);
  return workspace_->add_from_image(*target_, i);
}

int SendSource::fd(const Digest& diff_id) {
  std::lock_guard lock(mutex_);
  return workspace_->fd(diff_id);
}

Result<std::optional<LocalBasis>> SendSource::local_basis(const std::vector<Digest>& chain,
                                                          const std::string& reference,
                                                          const std::string& image_id) {
  std::lock_guard lock(mutex_);
  auto engine = opener_.engine();
  if (!engine) return cached_basis(chain, image_id);  // an archive, and no engine here
  auto match = find_image_with_layers(**engine, chain, reference, image_id);
  if (!match) return cached_basis(chain, image_id);
  auto& reader = basis_images_[match->image_id];
  if (!reader) {
    auto opened = opener_.open(match->image_id);
    if (!opened) {
      basis_images_.erase(match->image_id);
      return cached_basis(chain, image_id);  // removed meanwhile
    }
    reader = std::move(*opened);
  }
  LocalBasis basis;
  basis.source = "engine";
  basis.image_id = reader->info().image_id.str();
  basis.config_bytes = reader->info().config_bytes;
  for (size_t i = 0; i < chain.size(); ++i) {
    DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace_->add_from_image(*reader, i));
    basis.layers.push_back(index);
    basis.files.fds.push_back(workspace_->fd(index->diff_id));
  }
  return std::optional<LocalBasis>(std::move(basis));
}

std::optional<LocalBasis> SendSource::cached_basis(const std::vector<Digest>& chain,
                                                   const std::string& image_id) {
  if (!layer_cache_) return std::nullopt;
  // Layers verified earlier in this run are not read again.
  std::vector<Digest> missing;
  for (const Digest& d : chain)
    if (!cached_layers_.count(d)) missing.push_back(d);
  std::string config;
  if (!missing.empty()) {
    auto found = layer_cache_->open_chain(missing, image_id);
    if (!found) return std::nullopt;
    for (auto& layer : found->layers) {
      const Digest d = layer.index->diff_id;
      cached_layers_.emplace(d, std::move(layer));
    }
    config = std::move(found->config_bytes);
  } else if (auto found = layer_cache_->open_chain({}, image_id)) {
    config = std::move(found->config_bytes);
  }
  LocalBasis basis;
  basis.source = "cache";
  basis.config_bytes = std::move(config);
  if (!basis.config_bytes.empty()) {
    basis.image_id = image_id;
  } else {
    // No config to code the new one against: a key for the spool only.
    Sha256 key;
    for (const Digest& d : chain) key.update(d.str());
    basis.image_id = "cache:" + key.finish().hex();
  }
  for (const Digest& d : chain) {
    const StoredLayer& layer = cached_layers_.at(d);
    basis.layers.push_back(layer.index.get());
    basis.files.fds.push_back(layer.fd.get());
  }
  return basis;
}

Status SendSource::remember_sent() {
  std::lock_guard lock(mutex_);
  if (!layer_cache_ || remembered_) return ok_status();
  remembered_ = true;
  auto keep_image = [&](ImageReader& image) -> Status {
    for (size_t i = 0; i < image.info().layers.size(); ++i) {
      const Digest& diff_id = image.info().layers[i].diff_id;
      if (!workspace_->has(diff_id) && layer_cache_->holds(diff_id)) continue;
      // Read from the (already exported) image when no site needed it.
      DS_ASSIGN_OR_RETURN(const LayerIndex* index, workspace_->add_from_image(image, i));
      DS_RETURN_IF_ERROR(layer_cache_->keep_layer(workspace_->fd(index->diff_id), *index));
    }
    return layer_cache_->keep_config(image.info().image_id, image.info().config_bytes);
  };
  DS_RETURN_IF_ERROR(keep_image(*target_));
  for (auto& [id, reader] : basis_images_) DS_RETURN_IF_ERROR(keep_image(*reader));
  const CacheKeepStats& kept = layer_cache_->keep_stats();
  spdlog::info("layer cache: {} layers linked ({} bytes), {} copied ({} bytes), {} already held",
               kept.layers_linked, kept.bytes_linked, kept.layers_copied, kept.bytes_copied,
               kept.layers_already_held);
  return layer_cache_->enforce_budget();
}

std::shared_future<uint64_t> SendSource::pull_estimate(const std::vector<uint32_t>& layers) {
  std::lock_guard lock(mutex_);
  if (auto it = pull_estimates_.find(layers); it != pull_estimates_.end()) return it->second;
  std::vector<std::pair<int, uint64_t>> files;
  const std::vector<Digest> chain = target_->info().diff_ids();
  for (uint32_t t : layers) {
    if (t >= chain.size() || !workspace_->has(chain[t])) {
      std::promise<uint64_t> unknown;
      unknown.set_value(0);
      return unknown.get_future().share();
    }
    const Digest& diff_id = chain[t];
    files.emplace_back(workspace_->fd(diff_id), workspace_->size(diff_id));
  }
  return pull_estimates_[layers] =
             std::async(std::launch::async, [files] { return gzip_size_of(files); }).share();
}

std::shared_ptr<const SpooledStreams> SendSource::spooled(
    const std::string& key,
    const std::function<SpooledStreams(const std::filesystem::path& dir)>& encode) {
  std::promise<std::shared_ptr<const SpooledStreams>> promise;
  std::filesystem::path dir;
  std::unique_lock lock(mutex_);
  if (auto it = spooled_.find(key); it != spooled_.end()) {
    auto future = it->second;
    lock.unlock();  // wait without holding the workspace
    return future.get();
  }
  spooled_[key] = promise.get_future().share();
  dir = workspace_->dir() / ("spool-" + std::to_string(spool_dirs_++));
  lock.unlock();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto streams = std::make_shared<SpooledStreams>();
  if (ec) {
    streams->status = make_error(ErrorCode::kIo, "creating " + dir.string() + ": " + ec.message());
  } else {
    *streams = encode(dir);
  }
  promise.set_value(streams);
  return streams;
}

}  // namespace deltasync
