// See full_pull.h.
#include "receiver/pull/full_pull.h"

#include <unistd.h>

#include <map>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/engine/image_match.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "common/layerstream/layer_workspace.h"
#include "common/load/image_loader.h"
#include "common/store/engine_image_import.h"
#include "receiver/apply/keep_in_store.h"

namespace deltasync {

namespace {

struct HeldPrefix {
  size_t layers = 0;
  std::string engine_id;  // the image that holds them
};

// Leading layers of `chain` that some engine image holds, and which image.
Result<HeldPrefix> engine_prefix(EngineClient& engine, const std::vector<Digest>& chain) {
  DS_ASSIGN_OR_RETURN(auto images, engine.list_images());
  HeldPrefix best;
  for (const auto& summary : images) {
    auto detail = engine.inspect_image(summary.id);
    if (!detail) continue;
    std::vector<Digest> ids;
    for (const auto& text : detail->diff_ids) {
      auto d = Digest::parse(text);
      if (!d) break;
      ids.push_back(*d);
    }
    size_t n = common_prefix(chain, ids);
    if (n > best.layers) best = HeldPrefix{n, summary.id};
    if (best.layers == chain.size()) break;
  }
  return best;
}

}  // namespace

Result<FullPullResult> full_pull(RegistryClient& client, const std::string& repository,
                                 const RegistryImage& image, EngineClient& engine,
                                 const std::vector<std::string>& tags,
                                 const std::filesystem::path& pull_dir, int attempts,
                                 LayerStore* store) {
  FullPullResult result;
  DS_ASSIGN_OR_RETURN(EngineInfo info, engine.info());
  DS_ASSIGN_OR_RETURN(HeldPrefix prefix, engine_prefix(engine, image.diff_ids));
  size_t held = prefix.layers;
  result.layers_reused = held;
  std::error_code ec;
  std::filesystem::create_directories(pull_dir / "blobs", ec);
  if (ec)
    return make_error(ErrorCode::kIo,
                      "creating " + (pull_dir / "blobs").string() + ": " + ec.message());
  DS_ASSIGN_OR_RETURN(auto workspace,
                      LayerWorkspace::create(store ? store->tmp_dir() : pull_dir, "pull-layers-"));
  // A classic store needs nothing of the layers it holds; a containerd-
  // backed one needs every layer tar of the manifest we write, so the ones
  // the engine holds are read back from it (into the store, when there is
  // one, where they serve as bases later) instead of fetched again.
  std::map<Digest, StoredLayer> held_files;
  std::vector<Digest> pinned;  // held layers the store must keep until loaded
  struct Unpin {
    LayerStore* store;
    const std::vector<Digest>& layers;
    ~Unpin() {
      for (const auto& d : layers) store->unpin(d);
    }
  } unpin{store, pinned};
  if (held > 0 && info.store != ImageStoreKind::kClassic) {
    bool from_store = false;
    if (store) {
      auto imported = import_engine_image(*store, engine, prefix.engine_id);
      from_store = imported.has_value();
      for (size_t i = 0; from_store && i < held; ++i) {
        store->pin(image.diff_ids[i]);
        pinned.push_back(image.diff_ids[i]);
        auto layer = store->open_layer(image.diff_ids[i]);
        if (!layer) {
          from_store = false;
          break;
        }
        held_files.emplace(image.diff_ids[i], std::move(*layer));
      }
      if (!from_store) {
        held_files.clear();
        spdlog::warn(
            "{}: reading the layers {} holds into the store failed ({}); reading them "
            "from one export instead",
            repository, prefix.engine_id,
            imported ? "a layer went missing" : imported.error().message());
      }
    }
    if (!from_store) {
      ImageRef ref;
      ref.transport = ImageRef::Transport::kEngine;
      ref.location = prefix.engine_id;
      ref.original = prefix.engine_id;
      DS_ASSIGN_OR_RETURN(auto held_image, open_image(ref, &engine));
      for (size_t i = 0; i < held; ++i)
        DS_RETURN_IF_ERROR(workspace->add_from_image(*held_image, i));
    }
  }
  for (size_t i = held; i < image.layers.size(); ++i) {
    const RegistryDescriptor& blob = image.layers[i];
    const Digest& diff_id = image.diff_ids[i];
    if (workspace->has(diff_id)) continue;
    std::string name = "layer " + std::to_string(i + 1) + " (" + diff_id.short_str() + ")";
    auto blob_path = pull_dir / "blobs" / blob.digest.hex();
    DS_RETURN_IF_ERROR(with_context(fetch_blob_to_file(client, repository, blob.digest, blob.size,
                                                       blob_path, attempts, result.fetch),
                                    name));
    DS_ASSIGN_OR_RETURN(auto compressed, open_file_source(blob_path));
    DS_ASSIGN_OR_RETURN(auto plain, open_decompressed(std::move(compressed), name));
    DS_ASSIGN_OR_RETURN(auto file, workspace->create_file(diff_id));
    FdSink out(UniqueFd(::dup(file.second.get())), file.first.string());
    HashingSink hashed(&out);
    DS_ASSIGN_OR_RETURN(uint64_t size, with_context(copy_all(*plain, hashed), name));
    DS_RETURN_IF_ERROR(hashed.finish());
    Digest got = hashed.digest();
    if (got != diff_id)
      return make_error(ErrorCode::kVerifyFailed, name + ": the registry's blob " +
                                                      blob.digest.str() + " decompresses to " +
                                                      got.str() + ", not the config's diff_id");
    workspace->adopt_rebuilt(diff_id, std::move(file.second), size);
    std::filesystem::remove(blob_path, ec);
    ++result.layers_fetched;
  }
  DS_ASSIGN_OR_RETURN(LoadedImage loaded,
                      load_image_into_engine(
                          engine, image.config, image.diff_ids, held,
                          [&](const Digest& d) -> Result<LayerFileRef> {
                            if (workspace->has(d))
                              return LayerFileRef{workspace->fd(d), workspace->size(d)};
                            if (auto it = held_files.find(d); it != held_files.end())
                              return LayerFileRef{it->second.fd.get(), it->second.size};
                            return make_error(ErrorCode::kInternal,
                                              "layer " + d.str() + " was not fetched");
                          },
                          tags, LoadOptions{nullptr, workspace->dir()}));
  result.engine_id = loaded.engine_id;
  if (store) {
    std::vector<Digest> fetched(image.diff_ids.begin() + static_cast<std::ptrdiff_t>(held),
                                image.diff_ids.end());
    keep_in_store(*store, *workspace, fetched, image.config, loaded.engine_id);
  }
  return result;
}

}  // namespace deltasync
