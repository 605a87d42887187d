// See full_pull.h.
#include "receiver/pull/full_pull.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/engine/image_match.h"
#include "common/io/file.h"
#include "common/layerstream/layer_workspace.h"
#include "common/load/image_loader.h"
#include "receiver/apply/keep_in_store.h"

namespace deltasync {

namespace {

// Leading layers of `chain` that some engine image holds.
Result<size_t> engine_prefix(EngineClient& engine, const std::vector<Digest>& chain) {
  DS_ASSIGN_OR_RETURN(auto images, engine.list_images());
  size_t best = 0;
  for (const auto& summary : images) {
    auto detail = engine.inspect_image(summary.id);
    if (!detail) continue;
    std::vector<Digest> ids;
    for (const auto& text : detail->diff_ids) {
      auto d = Digest::parse(text);
      if (!d) break;
      ids.push_back(*d);
    }
    best = std::max(best, common_prefix(chain, ids));
    if (best == chain.size()) break;
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
  size_t held = 0;
  if (info.store == ImageStoreKind::kClassic) {
    DS_ASSIGN_OR_RETURN(held, engine_prefix(engine, image.diff_ids));
  }
  result.layers_reused = held;
  std::error_code ec;
  std::filesystem::create_directories(pull_dir / "blobs", ec);
  if (ec)
    return make_error(ErrorCode::kIo,
                      "creating " + (pull_dir / "blobs").string() + ": " + ec.message());
  DS_ASSIGN_OR_RETURN(auto workspace,
                      LayerWorkspace::create(store ? store->tmp_dir() : pull_dir, "pull-layers-"));
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
                            if (!workspace->has(d))
                              return make_error(ErrorCode::kInternal,
                                                "layer " + d.str() + " was not fetched");
                            return LayerFileRef{workspace->fd(d), workspace->size(d)};
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
