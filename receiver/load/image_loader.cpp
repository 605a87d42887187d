#include "receiver/load/image_loader.h"

#include <nlohmann/json.hpp>

#include "common/engine/load_archive.h"
#include "common/image/image.h"
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

Status load_image_into_engine(EngineClient& engine, const std::string& config,
                              const std::vector<Digest>& chain, size_t engine_layers,
                              const std::function<Result<LayerFileRef>(const Digest&)>& layer_file,
                              const std::vector<std::string>& tags) {
  Digest image_id = Digest::of(config);
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
  auto loaded = engine.inspect_image(image_id.str());
  if (!loaded && loaded.error().code() != ErrorCode::kNotFound)
    return std::unexpected(std::move(loaded).error().with_context("checking the loaded image"));
  if (!loaded) {
    return make_error(ErrorCode::kEngine, "the engine at " + engine.address() +
                                              " accepted the image archive but does not hold " +
                                              image_id.str() + " afterwards");
  }
  for (const auto& tag : tags) DS_RETURN_IF_ERROR(engine.tag_image(image_id.str(), tag));
  return ok_status();
}

}  // namespace deltasync
