#include "common/load/image_loader.h"

#include <algorithm>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/codec/go_gzip.h"
#include "common/engine/load_archive.h"
#include "common/image/blob_recipes.h"
#include "common/image/image.h"
#include "common/image/oci_layout_writer.h"
#include "common/io/file.h"

namespace deltasync {

Result<std::vector<Digest>> config_diff_ids(const std::string& config) {
  auto json = nlohmann::json::parse(config, nullptr, false);
  if (json.is_discarded() || !json.is_object() || !json.contains("rootfs") ||
      !json["rootfs"].is_object() || !json["rootfs"].contains("diff_ids") ||
      !json["rootfs"]["diff_ids"].is_array()) {
    return make_error(ErrorCode::kCorrupt, "image config is not valid JSON with rootfs.diff_ids");
  }
  std::vector<Digest> out;
  for (const auto& d : json["rootfs"]["diff_ids"]) {
    if (!d.is_string())
      return make_error(ErrorCode::kCorrupt, "image config: diff_id is not a string");
    DS_ASSIGN_OR_RETURN(Digest digest, Digest::parse(d.get<std::string>()));
    out.push_back(digest);
  }
  return out;
}

namespace {

// The engine's image `id` must list exactly `chain` as its layers.
Status check_loaded(EngineClient& engine, const std::string& id, const std::vector<Digest>& chain,
                    const std::string& what) {
  auto loaded = engine.inspect_image(id);
  if (!loaded && loaded.error().code() != ErrorCode::kNotFound)
    return std::unexpected(std::move(loaded).error().with_context("checking the loaded image"));
  if (!loaded) {
    return make_error(ErrorCode::kEngine, "the engine at " + engine.address() +
                                              " accepted the image archive but does not hold " +
                                              what + " afterwards");
  }
  std::vector<std::string> expected;
  for (const auto& d : chain) expected.push_back(d.str());
  if (loaded->diff_ids != expected) {
    return make_error(ErrorCode::kVerifyFailed,
                      "the engine at " + engine.address() + " holds " + what + " with " +
                          std::to_string(loaded->diff_ids.size()) +
                          " layers that are not the config's " + std::to_string(chain.size()));
  }
  return ok_status();
}

// Which of these blobs the engine holds already: on engines whose load
// reuses them (containerd, `reuse`), those need not be rebuilt or sent.
Result<std::vector<bool>> blobs_held(EngineClient& engine, const std::vector<Digest>& blobs,
                                     bool reuse) {
  std::vector<bool> held(blobs.size(), false);
  if (!reuse) return held;
  for (size_t i = 0; i < blobs.size(); ++i) {
    DS_ASSIGN_OR_RETURN(bool has, engine.has_blob(blobs[i].str()));
    held[i] = has;
  }
  return held;
}

// Rebuilds every compressed blob of `identity` into `scratch` (verified),
// then loads the build host's own documents and blobs; the engine's Id must
// then be the build host's target digest with the config's diff_ids.
Result<std::string> load_with_source_identity(EngineClient& engine, const std::string& config,
                                              const std::vector<Digest>& chain,
                                              const std::vector<LayerFileRef>& files,
                                              const DistributionIdentity& identity,
                                              const std::vector<std::string>& tags,
                                              const std::filesystem::path& scratch_parent,
                                              bool reuse_blobs) {
  if (identity.layers.size() != chain.size())
    return make_error(ErrorCode::kProtocol,
                      "the distribution identity lists " + std::to_string(identity.layers.size()) +
                          " layers, the config " + std::to_string(chain.size()));
  if (auto missing = identity.unreproducible_layers(); !missing.empty())
    return make_error(ErrorCode::kUnsupported,
                      "layer " + std::to_string(missing.front()) + " (" +
                          identity.layers[missing.front() - 1].blob.media_type +
                          ") has no recipe: the build host could not reproduce its blob");
  DS_ASSIGN_OR_RETURN(TempDir scratch, TempDir::create(scratch_parent, "blobs-"));
  struct Blob {
    UniqueFd fd;  // the rebuilt blob, or -1: the layer file itself
    uint64_t size = 0;
  };
  std::vector<Blob> blobs(chain.size());
  // Blobs the engine holds (containerd: typically the basis layers) are
  // neither rebuilt nor sent.
  std::vector<Digest> layer_blobs;
  for (const auto& layer : identity.layers) layer_blobs.push_back(layer.blob.digest);
  DS_ASSIGN_OR_RETURN(std::vector<bool> held, blobs_held(engine, layer_blobs, reuse_blobs));
  const GoGzip& gzip = GoGzip::installed();
  for (size_t i = 0; i < chain.size(); ++i) {
    const DistributionLayer& layer = identity.layers[i];
    if (layer.diff_id != chain[i])
      return make_error(ErrorCode::kProtocol, "the distribution identity's layer " +
                                                  std::to_string(i + 1) + " is not the config's");
    if (held[i] || layer.uncompressed()) continue;
    auto path = scratch.path() / layer.blob.digest.hex();
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return std::unexpected(errno_error(errno, "create " + path.string()));
    blobs[i].fd = UniqueFd(fd);
    int write_fd = ::dup(fd);
    if (write_fd < 0) return std::unexpected(errno_error(errno, "dup " + path.string()));
    FdSink sink(UniqueFd(write_fd), path.string());
    FileSource tar(files[i].fd, 0, files[i].size, "layer " + chain[i].short_str());
    DS_RETURN_IF_ERROR(
        with_context(rebuild_blob(layer, tar, sink, gzip), "layer " + std::to_string(i + 1)));
    DS_RETURN_IF_ERROR(sink.finish());
    blobs[i].size = layer.blob.size;
  }
  auto produce = [&](ByteSink& sink) -> Status {
    OciLayoutWriter writer(sink);
    for (const auto& doc : identity.documents) DS_RETURN_IF_ERROR(writer.add_blob(doc));
    DS_RETURN_IF_ERROR(writer.add_blob(config));
    for (size_t i = 0; i < chain.size(); ++i) {
      const DistributionLayer& layer = identity.layers[i];
      if (held[i]) continue;
      if (blobs[i].fd.valid()) {
        FileSource source(blobs[i].fd.get(), 0, blobs[i].size,
                          "blob " + layer.blob.digest.short_str());
        DS_RETURN_IF_ERROR(writer.add_blob(layer.blob.digest, blobs[i].size, source));
      } else {
        FileSource source(files[i].fd, 0, files[i].size, "layer " + chain[i].short_str());
        DS_RETURN_IF_ERROR(writer.add_blob(layer.blob.digest, files[i].size, source));
      }
    }
    return writer.finish(identity.target, tags);
  };
  DS_ASSIGN_OR_RETURN(auto messages, load_archive_through_pipe(engine, produce));
  (void)messages;
  std::string id = identity.target.digest.str();
  DS_RETURN_IF_ERROR(check_loaded(
      engine, id, chain, identity.describe() + " (config " + Digest::of(config).str() + ")"));
  return id;
}

}  // namespace

Result<LoadedImage> load_image_into_engine(
    EngineClient& engine, const std::string& config, const std::vector<Digest>& chain,
    size_t engine_layers, const std::function<Result<LayerFileRef>(const Digest&)>& layer_file,
    const std::vector<std::string>& tags, const LoadOptions& options) {
  LoadedImage result;
  result.config_digest = Digest::of(config);
  DS_ASSIGN_OR_RETURN(EngineInfo info, with_context(engine.info(), "before loading"));
  result.store = info.describe();
  if (info.store == ImageStoreKind::kContainerd) {
    std::vector<OciArchiveWriter::LayerSize> sizes;
    std::vector<LayerFileRef> files;
    for (const auto& d : chain) {
      DS_ASSIGN_OR_RETURN(LayerFileRef file, layer_file(d));
      files.push_back(file);
      sizes.push_back({d, file.size});
    }
    if (options.distribution) {
      const auto scratch =
          options.scratch_dir.empty() ? default_temp_parent() : options.scratch_dir;
      auto exact = load_with_source_identity(engine, config, chain, files, *options.distribution,
                                             tags, scratch, info.load_reuses_blobs());
      // A held blob went (GC after an image was removed) between our look
      // and the load's lease: once more, sending every blob.
      if (!exact && exact.error().code() == ErrorCode::kNotFound && info.load_reuses_blobs())
        exact = load_with_source_identity(engine, config, chain, files, *options.distribution, tags,
                                          scratch, /*reuse_blobs=*/false);
      if (exact) {
        result.engine_id = *exact;
        result.same_as_source = true;
        for (const auto& tag : tags) DS_RETURN_IF_ERROR(engine.tag_image(result.engine_id, tag));
        return result;
      }
      if (exact.error().code() == ErrorCode::kCancelled) return std::unexpected(exact.error());
      // The content identity still holds: load that, and say why the Id differs.
      result.identity_note = "the build host's " + options.distribution->describe() +
                             " was not kept: " + exact.error().message();
    }
    // Our manifest's layers are the uncompressed tars, named by diff_id:
    // containerd's load reuses those it holds (the basis, after the first).
    DS_ASSIGN_OR_RETURN(std::vector<bool> held,
                        blobs_held(engine, chain, info.load_reuses_blobs()));
    Digest manifest_digest;
    auto produce = [&](ByteSink& sink) -> Status {
      DS_ASSIGN_OR_RETURN(auto writer, OciArchiveWriter::create(sink, config, sizes, tags));
      manifest_digest = writer->manifest_digest();
      for (size_t i = 0; i < chain.size(); ++i) {
        if (held[i]) {
          DS_RETURN_IF_ERROR(writer->skip_layer(chain[i]));
          continue;
        }
        FileSource source(files[i].fd, 0, files[i].size, "layer " + chain[i].short_str());
        DS_RETURN_IF_ERROR(writer->add_layer(chain[i], files[i].size, source));
      }
      return writer->finish();
    };
    auto messages = load_archive_through_pipe(engine, produce);
    if (!messages && messages.error().code() == ErrorCode::kNotFound &&
        std::find(held.begin(), held.end(), true) != held.end()) {
      // As above: a held blob went before the load leased it.
      held.assign(chain.size(), false);
      messages = load_archive_through_pipe(engine, produce);
    }
    if (!messages) return std::unexpected(messages.error());
    result.engine_id = manifest_digest.str();
    DS_RETURN_IF_ERROR(check_loaded(
        engine, result.engine_id, chain,
        "manifest " + result.engine_id + " (config " + result.config_digest.str() + ")"));
  } else {
    auto produce = [&](ByteSink& sink) -> Status {
      DockerArchiveWriter writer(sink, config, tags);
      for (size_t i = 0; i < chain.size(); ++i) {
        const Digest& d = chain[i];
        if (i < engine_layers) {
          DS_RETURN_IF_ERROR(writer.skip_layer(d));
          continue;
        }
        DS_ASSIGN_OR_RETURN(LayerFileRef file, layer_file(d));
        FileSource source(file.fd, 0, file.size, "rebuilt layer " + d.short_str());
        DS_RETURN_IF_ERROR(writer.add_layer(d, file.size, source));
      }
      return writer.finish();
    };
    DS_ASSIGN_OR_RETURN(auto messages, load_archive_through_pipe(engine, produce));
    (void)messages;
    result.engine_id = result.config_digest.str();
    DS_RETURN_IF_ERROR(check_loaded(engine, result.engine_id, chain, result.engine_id));
  }
  for (const auto& tag : tags) DS_RETURN_IF_ERROR(engine.tag_image(result.engine_id, tag));
  return result;
}

}  // namespace deltasync
