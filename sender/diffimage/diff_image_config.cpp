#include "sender/diffimage/diff_image_config.h"

#include <nlohmann/json.hpp>

namespace deltasync {

namespace {
using Json = nlohmann::ordered_json;

Result<Json> parse(const std::string& bytes, const char* what) {
  Json json = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return make_error(ErrorCode::kCorrupt,
                      std::string(what) + " image config is not a JSON object");
  }
  if (!json.contains("rootfs") || !json["rootfs"].is_object() ||
      !json["rootfs"].contains("diff_ids") || !json["rootfs"]["diff_ids"].is_array()) {
    return make_error(ErrorCode::kCorrupt,
                      std::string(what) + " image config has no rootfs.diff_ids list");
  }
  return json;
}
}  // namespace

Result<std::string> make_diff_image_config(const DiffImageConfigInput& input) {
  DS_ASSIGN_OR_RETURN(Json base, parse(input.base_config, "base"));
  DS_ASSIGN_OR_RETURN(Json out, parse(input.target_config, "target"));

  Json diff_ids = base["rootfs"]["diff_ids"];
  diff_ids.push_back(input.new_layer.str());
  out["rootfs"]["diff_ids"] = diff_ids;

  // BASE's history, then one entry per layer it lacks (so the counts agree),
  // then the extra layer's.
  Json history = Json::array();
  size_t with_layer = 0;
  if (base.contains("history") && base["history"].is_array()) {
    for (const auto& h : base["history"]) {
      history.push_back(h);
      if (!(h.is_object() && h.contains("empty_layer") && h["empty_layer"].is_boolean() &&
            h["empty_layer"].get<bool>())) {
        ++with_layer;
      }
    }
  }
  for (size_t i = with_layer; i + 1 < diff_ids.size(); ++i) {
    Json filler = Json::object();
    filler["created_by"] = "(layer " + std::to_string(i + 1) + " of the base image)";
    history.push_back(filler);
  }
  Json entry = Json::object();
  if (out.contains("created")) entry["created"] = out["created"];
  entry["created_by"] = input.created_by;
  entry["comment"] = "deltasend diff-image";
  history.push_back(entry);
  out["history"] = history;

  Digest base_id = Digest::of(input.base_config);
  Digest target_id = Digest::of(input.target_config);
  if (!out.contains("config") || !out["config"].is_object()) out["config"] = Json::object();
  Json& labels = out["config"]["Labels"];
  if (!labels.is_object()) labels = Json::object();
  labels[kDiffImageBaseLabel] = base_id.str();
  labels[kDiffImageTargetLabel] = target_id.str();
  try {
    return out.dump();
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kCorrupt, std::string("diff image config: ") + e.what());
  }
}

}  // namespace deltasync
