// Resolving a registry reference to one platform's image (registry_image.h):
// an index or manifest list is read for its entry matching the platform
// (os, architecture and, when asked, variant; attestation entries of
// BuildKit, platform unknown/unknown, never match), then that manifest, then
// its config, fetched by digest and verified. The config's diff_ids and the
// manifest's layers must pair up one to one, or the image is refused: the
// pull path relies on layer i's blob decompressing to diff_id i.
#include "common/registry/registry_image.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

namespace deltasync {

namespace {

using Json = nlohmann::json;

constexpr size_t kConfigLimit = 16 << 20;

bool is_index(const std::string& media_type) {
  return media_type == media_type::kOciIndex || media_type == media_type::kDockerList;
}

bool is_image_manifest(const std::string& media_type) {
  return media_type == media_type::kOciManifest || media_type == media_type::kDockerManifest;
}

std::string body_media_type(const RegistryManifest& m, const Json& j) {
  if (j.contains("mediaType") && j["mediaType"].is_string())
    return j["mediaType"].get<std::string>();
  if (!m.media_type.empty()) return m.media_type;
  // An OCI index without mediaType has "manifests"; a manifest has "config".
  if (j.contains("manifests")) return media_type::kOciIndex;
  return media_type::kOciManifest;
}

struct Platform {
  std::string os, arch, variant;
};

Platform split_platform(const std::string& text) {
  Platform p;
  size_t a = text.find('/');
  p.os = text.substr(0, a);
  if (a != std::string::npos) {
    size_t b = text.find('/', a + 1);
    p.arch = text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (b != std::string::npos) p.variant = text.substr(b + 1);
  }
  return p;
}

}  // namespace

std::string host_platform() {
  struct utsname u {};
  std::string machine = uname(&u) == 0 ? u.machine : "x86_64";
  if (machine == "x86_64") return "linux/amd64";
  if (machine == "aarch64") return "linux/arm64";
  if (machine.rfind("armv7", 0) == 0) return "linux/arm/v7";
  if (machine == "i686" || machine == "i386") return "linux/386";
  return "linux/" + machine;
}

Result<std::optional<RegistryImage>> resolve_registry_image(RegistryClient& client,
                                                            const std::string& repository,
                                                            const std::string& reference,
                                                            const std::string& platform) {
  const std::string what = repository + ":" + reference;
  DS_ASSIGN_OR_RETURN(auto named, client.get_manifest(repository, reference));
  if (!named) return std::optional<RegistryImage>();
  RegistryImage image;
  image.named = *named;
  image.platform = platform.empty() ? host_platform() : platform;
  Json j = Json::parse(named->body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::kCorrupt, what + ": the manifest is not JSON");
  if (j.value("schemaVersion", 0) == 1)
    return make_error(ErrorCode::kUnsupported,
                      what + ": a schema 1 manifest (push it again with a current client)");
  std::string type = body_media_type(*named, j);
  if (is_index(type)) {
    Platform want = split_platform(image.platform);
    std::optional<Digest> chosen;
    std::string offered;
    for (const auto& entry : j.value("manifests", Json::array())) {
      if (!entry.is_object() || !entry.contains("platform")) continue;
      const Json& p = entry["platform"];
      std::string os = p.value("os", ""), arch = p.value("architecture", ""),
                  variant = p.value("variant", "");
      if (os == "unknown") continue;  // attestation manifests
      offered +=
          (offered.empty() ? "" : ", ") + os + "/" + arch + (variant.empty() ? "" : "/" + variant);
      if (os == want.os && arch == want.arch && (want.variant.empty() || want.variant == variant)) {
        auto d = Digest::parse(entry.value("digest", ""));
        if (!d)
          return make_error(ErrorCode::kCorrupt, what + ": index entry: " + d.error().message());
        chosen = *d;
        break;
      }
    }
    if (!chosen)
      return make_error(ErrorCode::kNotFound, what + ": no manifest for " + image.platform +
                                                  " in the index (it has " +
                                                  (offered.empty() ? "none" : offered) + ")");
    DS_ASSIGN_OR_RETURN(auto manifest, client.get_manifest(repository, chosen->str()));
    if (!manifest)
      return make_error(ErrorCode::kCorrupt, what + ": the index names manifest " + chosen->str() +
                                                 ", which the registry does not hold");
    image.manifest = *manifest;
    j = Json::parse(manifest->body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return make_error(ErrorCode::kCorrupt, what + ": manifest " + chosen->str() + " is not JSON");
    type = body_media_type(*manifest, j);
  } else {
    image.manifest = *named;
  }
  if (!is_image_manifest(type))
    return make_error(ErrorCode::kUnsupported,
                      what + ": " + type + " is not an image manifest this client reads");
  if (!j.contains("config") || !j["config"].is_object())
    return make_error(ErrorCode::kCorrupt, what + ": the manifest has no config");
  auto config_digest = Digest::parse(j["config"].value("digest", ""));
  if (!config_digest)
    return make_error(ErrorCode::kCorrupt, what + ": config: " + config_digest.error().message());
  image.config_digest = *config_digest;
  DS_ASSIGN_OR_RETURN(
      image.config,
      with_context(client.get_blob(repository, *config_digest, kConfigLimit), what + ": config"));
  Json config = Json::parse(image.config, nullptr, false);
  if (config.is_discarded() || !config.is_object() || !config.contains("rootfs"))
    return make_error(ErrorCode::kCorrupt, what + ": the config has no rootfs");
  for (const auto& id : config["rootfs"].value("diff_ids", Json::array())) {
    auto d = Digest::parse(id.is_string() ? id.get<std::string>() : "");
    if (!d)
      return make_error(ErrorCode::kCorrupt, what + ": config diff_id: " + d.error().message());
    image.diff_ids.push_back(*d);
  }
  for (const auto& layer : j.value("layers", Json::array())) {
    RegistryDescriptor d;
    d.media_type = layer.value("mediaType", "");
    auto digest = Digest::parse(layer.value("digest", ""));
    if (!digest)
      return make_error(ErrorCode::kCorrupt, what + ": layer: " + digest.error().message());
    d.digest = *digest;
    d.size = layer.value("size", uint64_t{0});
    image.layers.push_back(std::move(d));
  }
  if (image.layers.size() != image.diff_ids.size())
    return make_error(ErrorCode::kCorrupt,
                      what + ": the manifest lists " + std::to_string(image.layers.size()) +
                          " layers, the config " + std::to_string(image.diff_ids.size()));
  return std::optional<RegistryImage>(std::move(image));
}

}  // namespace deltasync
