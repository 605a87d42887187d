// The delta artifact's JSON (delta_artifact.h): written with sorted keys
// and no insignificant whitespace, so publishing the same bundle twice gives
// the same manifest digest (a re-publish is a no-op for the registry), and
// read strictly: every digest is parsed, every media type checked, so a
// malformed or foreign artifact is refused by name before anything is
// fetched.
#include "common/registry/delta_artifact.h"

#include <nlohmann/json.hpp>

namespace deltasync {

namespace {

using Json = nlohmann::json;

Json descriptor_json(const RegistryDescriptor& d) {
  Json out = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.artifact_type.empty()) out["artifactType"] = d.artifact_type;
  if (!d.annotations.empty()) out["annotations"] = d.annotations;
  return out;
}

Result<RegistryDescriptor> parse_descriptor(const Json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string() ||
      !j.contains("mediaType") || !j["mediaType"].is_string() || !j.contains("size") ||
      !j["size"].is_number_unsigned())
    return make_error(ErrorCode::kCorrupt,
                      what + ": not a descriptor (needs mediaType, digest, size)");
  RegistryDescriptor d;
  d.media_type = j["mediaType"].get<std::string>();
  auto digest = Digest::parse(j["digest"].get<std::string>());
  if (!digest) return make_error(ErrorCode::kCorrupt, what + ": " + digest.error().message());
  d.digest = *digest;
  d.size = j["size"].get<uint64_t>();
  if (j.contains("artifactType") && j["artifactType"].is_string())
    d.artifact_type = j["artifactType"].get<std::string>();
  if (j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [key, value] : j["annotations"].items())
      if (value.is_string()) d.annotations[key] = value.get<std::string>();
  }
  return d;
}

Json side_json(const DeltaImageSide& side) {
  Json out = {{"reference", side.reference}, {"config_digest", side.config_digest.str()}};
  if (side.manifest_digest) out["manifest_digest"] = side.manifest_digest->str();
  Json ids = Json::array();
  for (const auto& d : side.diff_ids) ids.push_back(d.str());
  out["diff_ids"] = ids;
  return out;
}

Result<Digest> digest_field(const Json& j, const char* key, const std::string& what) {
  if (!j.contains(key) || !j[key].is_string())
    return make_error(ErrorCode::kCorrupt, what + ": no " + key);
  auto d = Digest::parse(j[key].get<std::string>());
  if (!d) return make_error(ErrorCode::kCorrupt, what + "." + key + ": " + d.error().message());
  return *d;
}

Result<DeltaImageSide> parse_side(const Json& j, const std::string& what) {
  if (!j.is_object()) return make_error(ErrorCode::kCorrupt, what + ": not an object");
  DeltaImageSide side;
  if (j.contains("reference") && j["reference"].is_string())
    side.reference = j["reference"].get<std::string>();
  DS_ASSIGN_OR_RETURN(side.config_digest, digest_field(j, "config_digest", what));
  if (j.contains("manifest_digest")) {
    DS_ASSIGN_OR_RETURN(Digest m, digest_field(j, "manifest_digest", what));
    side.manifest_digest = m;
  }
  if (!j.contains("diff_ids") || !j["diff_ids"].is_array())
    return make_error(ErrorCode::kCorrupt, what + ": no diff_ids");
  for (const auto& id : j["diff_ids"]) {
    if (!id.is_string()) return make_error(ErrorCode::kCorrupt, what + ": a diff_id is not text");
    auto d = Digest::parse(id.get<std::string>());
    if (!d) return make_error(ErrorCode::kCorrupt, what + ".diff_ids: " + d.error().message());
    side.diff_ids.push_back(*d);
  }
  return side;
}

Result<Json> parse_json(std::string_view text, const std::string& what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::kCorrupt, what + ": not a JSON object");
  return j;
}

}  // namespace

std::string DeltaArtifactConfig::to_json() const {
  Json out = {{"format", format},
              {"bundle_format", bundle_format},
              {"target", side_json(target)},
              {"base", side_json(base)},
              {"bundle", {{"digest", bundle_digest.str()}, {"size", bundle_size}}},
              {"part_size", part_size}};
  return out.dump();
}

Result<DeltaArtifactConfig> DeltaArtifactConfig::parse(std::string_view json) {
  const std::string what = "delta config";
  DS_ASSIGN_OR_RETURN(Json j, parse_json(json, what));
  DeltaArtifactConfig config;
  if (!j.contains("format") || !j["format"].is_number_integer())
    return make_error(ErrorCode::kCorrupt, what + ": no format");
  config.format = j["format"].get<int>();
  if (config.format > kDeltaArtifactFormat)
    return make_error(ErrorCode::kUnsupported, what + ": format " + std::to_string(config.format) +
                                                   " is newer than this deltarecvd reads (" +
                                                   std::to_string(kDeltaArtifactFormat) +
                                                   "); upgrade deltarecvd");
  if (j.contains("bundle_format") && j["bundle_format"].is_number_unsigned())
    config.bundle_format = j["bundle_format"].get<uint32_t>();
  if (!j.contains("target") || !j.contains("base"))
    return make_error(ErrorCode::kCorrupt, what + ": no target or base");
  DS_ASSIGN_OR_RETURN(config.target, parse_side(j["target"], what + ".target"));
  DS_ASSIGN_OR_RETURN(config.base, parse_side(j["base"], what + ".base"));
  if (!j.contains("bundle") || !j["bundle"].is_object())
    return make_error(ErrorCode::kCorrupt, what + ": no bundle");
  DS_ASSIGN_OR_RETURN(config.bundle_digest, digest_field(j["bundle"], "digest", what + ".bundle"));
  if (!j["bundle"].contains("size") || !j["bundle"]["size"].is_number_unsigned())
    return make_error(ErrorCode::kCorrupt, what + ".bundle: no size");
  config.bundle_size = j["bundle"]["size"].get<uint64_t>();
  if (!j.contains("part_size") || !j["part_size"].is_number_unsigned() ||
      j["part_size"].get<uint64_t>() == 0)
    return make_error(ErrorCode::kCorrupt, what + ": no part_size");
  config.part_size = j["part_size"].get<uint64_t>();
  return config;
}

std::string DeltaArtifactManifest::to_json() const {
  Json layers = Json::array();
  for (const auto& part : parts) layers.push_back(descriptor_json(part));
  Json out = {{"schemaVersion", 2},
              {"mediaType", media_type::kOciManifest},
              {"artifactType", kDeltaArtifactType},
              {"config", descriptor_json(config)},
              {"layers", layers},
              {"subject", descriptor_json(subject)}};
  if (!annotations.empty()) out["annotations"] = annotations;
  return out.dump();
}

Result<DeltaArtifactManifest> DeltaArtifactManifest::parse(std::string_view json) {
  const std::string what = "delta manifest";
  DS_ASSIGN_OR_RETURN(Json j, parse_json(json, what));
  if (j.value("mediaType", "") != media_type::kOciManifest ||
      j.value("artifactType", "") != kDeltaArtifactType)
    return make_error(ErrorCode::kCorrupt, what + ": not a deltasync delta (artifactType " +
                                               j.value("artifactType", std::string("none")) + ")");
  DeltaArtifactManifest m;
  if (!j.contains("config")) return make_error(ErrorCode::kCorrupt, what + ": no config");
  DS_ASSIGN_OR_RETURN(m.config, parse_descriptor(j["config"], what + ".config"));
  if (m.config.media_type != kDeltaConfigMediaType)
    return make_error(ErrorCode::kCorrupt, what + ": config has media type " + m.config.media_type);
  if (!j.contains("layers") || !j["layers"].is_array() || j["layers"].empty())
    return make_error(ErrorCode::kCorrupt, what + ": no bundle parts");
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    DS_ASSIGN_OR_RETURN(
        auto part, parse_descriptor(j["layers"][i], what + ".layers[" + std::to_string(i) + "]"));
    if (part.media_type != kBundlePartMediaType)
      return make_error(ErrorCode::kCorrupt, what + ": part " + std::to_string(i + 1) +
                                                 " has media type " + part.media_type);
    m.parts.push_back(std::move(part));
  }
  if (!j.contains("subject")) return make_error(ErrorCode::kCorrupt, what + ": no subject");
  DS_ASSIGN_OR_RETURN(m.subject, parse_descriptor(j["subject"], what + ".subject"));
  if (j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [key, value] : j["annotations"].items())
      if (value.is_string()) m.annotations[key] = value.get<std::string>();
  }
  return m;
}

std::string delta_tag(const Digest& target_manifest, const Digest& base_config) {
  return "ds-delta-" + target_manifest.hex().substr(0, 48) + "-" + base_config.hex().substr(0, 48);
}

std::string referrers_tag(const Digest& subject) {
  return "sha256-" + subject.hex();
}

Result<std::vector<RegistryDescriptor>> parse_index_descriptors(std::string_view json) {
  const std::string what = "referrers index";
  DS_ASSIGN_OR_RETURN(Json j, parse_json(json, what));
  std::vector<RegistryDescriptor> out;
  if (!j.contains("manifests")) return out;
  if (!j["manifests"].is_array())
    return make_error(ErrorCode::kCorrupt, what + ": manifests is not a list");
  const Json& manifests = j["manifests"];
  for (size_t i = 0; i < manifests.size(); ++i) {
    DS_ASSIGN_OR_RETURN(auto d,
                        parse_descriptor(manifests[i], what + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(d));
  }
  return out;
}

std::string referrers_index_json(const std::vector<RegistryDescriptor>& entries) {
  Json manifests = Json::array();
  for (const auto& d : entries) manifests.push_back(descriptor_json(d));
  Json out = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", manifests}};
  return out.dump();
}

Result<std::string> add_to_referrers_index(const std::string& existing,
                                           const RegistryDescriptor& entry) {
  std::vector<RegistryDescriptor> list;
  if (!existing.empty()) {
    DS_ASSIGN_OR_RETURN(list, parse_index_descriptors(existing));
  }
  std::erase_if(list, [&](const RegistryDescriptor& d) { return d.digest == entry.digest; });
  list.push_back(entry);
  return referrers_index_json(list);
}

Result<std::vector<RegistryDescriptor>> parse_referrers_tag_index(const RegistryManifest& held) {
  Json j = Json::parse(held.body.begin(), held.body.end(), nullptr, false);
  std::string declared = j.is_object() && j.contains("mediaType") && j["mediaType"].is_string()
                             ? j["mediaType"].get<std::string>()
                             : std::string();
  std::string type =
      held.media_type.empty() || held.media_type == "application/json" ? declared : held.media_type;
  if (type != media_type::kOciIndex || (!declared.empty() && declared != type)) {
    return make_error(ErrorCode::kCorrupt, "referrers tag: holds " + held.digest.str() +
                                               " of type '" +
                                               (type.empty() ? std::string("unknown") : type) +
                                               "', not an OCI index; it is left as it is");
  }
  return parse_index_descriptors(held.body);
}

Result<RegistryDescriptor> manifest_subject(std::string_view manifest_json) {
  const std::string what = "manifest";
  DS_ASSIGN_OR_RETURN(Json j, parse_json(manifest_json, what));
  if (!j.contains("subject")) return make_error(ErrorCode::kCorrupt, what + ": no subject");
  return parse_descriptor(j["subject"], what + ".subject");
}

std::optional<std::string> referrer_entry_problem(const RegistryDescriptor& entry,
                                                  const RegistryManifest& manifest,
                                                  const Digest& subject) {
  if (manifest.digest != entry.digest) {
    return "the registry's manifest is " + manifest.digest.str();
  }
  if (manifest.body.size() != entry.size) {
    return "listed with size " + std::to_string(entry.size) + ", the manifest has " +
           std::to_string(manifest.body.size()) + " bytes";
  }
  if (manifest.media_type != media_type::kOciManifest &&
      manifest.media_type != media_type::kDockerManifest &&
      manifest.media_type != media_type::kOciIndex) {
    return "a " +
           (manifest.media_type.empty() ? std::string("manifest of no type")
                                        : manifest.media_type) +
           " cannot refer to an image";
  }
  auto named = manifest_subject(manifest.body);
  if (!named) return named.error().message();
  if (named->digest != subject) return "its subject is " + named->digest.str();
  if (entry.artifact_type == kDeltaArtifactType) {
    if (auto delta = DeltaArtifactManifest::parse(manifest.body); !delta) {
      return delta.error().message();
    }
  }
  return std::nullopt;
}

}  // namespace deltasync
