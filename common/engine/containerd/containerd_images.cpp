// Resolving and unpacking containerd images; see containerd_images.h.
#include "common/engine/containerd/containerd_images.h"

#include <chrono>
#include <set>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/image/manifest.h"

namespace deltasync::containerd_images {

using containerd_rpc::ContainerdRpc;
using containerd_rpc::Descriptor;
using Json = nlohmann::json;

namespace {

constexpr int64_t kMaxDocument = 4 << 20;

bool is_index(const std::string& media_type) {
  return media_type == "application/vnd.oci.image.index.v1+json" ||
         media_type == "application/vnd.docker.distribution.manifest.list.v2+json";
}

// A document from the content store, checked against its digest.
Result<std::string> read_document(ContainerdRpc& rpc, const Descriptor& d) {
  DS_ASSIGN_OR_RETURN(std::string bytes, rpc.read_small_blob(d.digest, kMaxDocument));
  if (Digest::of(bytes).str() != d.digest)
    return make_error(ErrorCode::kVerifyFailed, "document " + d.digest + " in containerd at " +
                                                    rpc.address() + " does not hash to its digest");
  return bytes;
}

Descriptor descriptor_of(const Json& j) {
  Descriptor d;
  d.media_type = j.value("mediaType", "");
  d.digest = j.value("digest", "");
  d.size = j.value("size", int64_t{0});
  return d;
}

struct Platform {
  std::string os = "linux";
  std::string architecture;
  std::string variant;
};

Platform parse_platform(const std::string& text) {
  Platform p;
  p.architecture = std::string(host_architecture());
  if (text.empty()) return p;
  size_t a = text.find('/');
  p.os = text.substr(0, a);
  if (a == std::string::npos) return p;
  size_t b = text.find('/', a + 1);
  p.architecture = text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  if (b != std::string::npos) p.variant = text.substr(b + 1);
  return p;
}

}  // namespace

std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const auto& d : diff_ids)
    out.push_back(out.empty() ? d : Digest::of(out.back() + " " + d).str());
  return out;
}

Result<ResolvedImage> resolve(ContainerdRpc& rpc, const Descriptor& target,
                              const std::string& platform_text) {
  ResolvedImage image;
  image.target = target;
  const std::string what = "image " + target.digest + " in containerd at " + rpc.address();
  try {
    Descriptor manifest = target;
    if (is_index(target.media_type)) {
      DS_ASSIGN_OR_RETURN(image.index_bytes, read_document(rpc, target));
      Json index = Json::parse(image.index_bytes);
      Platform want = parse_platform(platform_text);
      std::optional<Descriptor> chosen;
      std::string offered;
      for (const auto& m : index.at("manifests")) {
        if (!m.contains("platform")) continue;
        const Json& p = m["platform"];
        std::string os = p.value("os", ""), arch = p.value("architecture", ""),
                    variant = p.value("variant", "");
        if (os == "unknown") continue;  // attestation manifests
        offered += (offered.empty() ? "" : ", ") + os + "/" + arch;
        if (os == want.os && arch == want.architecture &&
            (want.variant.empty() || variant == want.variant) && !chosen)
          chosen = descriptor_of(m);
      }
      if (!chosen)
        return make_error(ErrorCode::kNotFound, what + ": no manifest for " + want.os + "/" +
                                                    want.architecture + " (the index offers " +
                                                    (offered.empty() ? "none" : offered) +
                                                    "); give --platform");
      manifest = *chosen;
    }
    image.manifest = manifest;
    DS_ASSIGN_OR_RETURN(image.manifest_bytes,
                        with_context(read_document(rpc, manifest),
                                     what + ": this platform's manifest (not pulled for it?)"));
    Json m = Json::parse(image.manifest_bytes);
    image.config = descriptor_of(m.at("config"));
    for (const auto& l : m.at("layers")) image.layers.push_back(descriptor_of(l));
    DS_ASSIGN_OR_RETURN(image.config_bytes, with_context(read_document(rpc, image.config), what));
    Json config = Json::parse(image.config_bytes);
    for (const auto& d : config.at("rootfs").at("diff_ids"))
      image.diff_ids.push_back(d.get<std::string>());
    image.os = config.value("os", "");
    image.architecture = config.value("architecture", "");
  } catch (const Json::exception& e) {
    return make_error(ErrorCode::kCorrupt, what + ": unreadable document: " + e.what());
  }
  if (image.diff_ids.size() != image.layers.size())
    return make_error(ErrorCode::kCorrupt,
                      what + ": the manifest lists " + std::to_string(image.layers.size()) +
                          " layers, the config " + std::to_string(image.diff_ids.size()));
  return image;
}

Result<ResolvedImage> find(ContainerdRpc& rpc, const std::string& name,
                           const std::string& platform) {
  const bool by_digest = name.starts_with("sha256:");
  if (!by_digest) {
    auto record = rpc.get_image(engine_detail::qualified_name(name));
    if (!record && record.error().code() == ErrorCode::kNotFound)
      return make_error(ErrorCode::kNotFound,
                        "no such image " + name + " in containerd at " + rpc.address());
    if (!record) return std::unexpected(record.error());
    DS_ASSIGN_OR_RETURN(ResolvedImage image, resolve(rpc, record->target, platform));
    DS_ASSIGN_OR_RETURN(auto all, rpc.list_images());
    for (const auto& r : all)
      if (r.target.digest == record->target.digest) image.names.push_back(r.name);
    return image;
  }
  DS_ASSIGN_OR_RETURN(auto all, rpc.list_images());
  std::optional<ResolvedImage> found;
  std::set<std::string> tried;
  for (const auto& r : all) {
    if (found && r.target.digest == found->target.digest) {
      found->names.push_back(r.name);
      continue;
    }
    if (found || !tried.insert(r.target.digest).second) continue;
    if (r.target.digest == name) {
      DS_ASSIGN_OR_RETURN(ResolvedImage image, resolve(rpc, r.target, platform));
      found = std::move(image);
      found->names.push_back(r.name);
      continue;
    }
    // The config digest (the kubelet's image ID): resolve and compare.
    auto image = resolve(rpc, r.target, platform);
    if (image && (image->config.digest == name || image->manifest.digest == name)) {
      found = std::move(*image);
      found->names.push_back(r.name);
    }
  }
  if (!found)
    return make_error(ErrorCode::kNotFound,
                      "no such image " + name + " in containerd at " + rpc.address());
  // Names listed before the match.
  for (const auto& r : all)
    if (r.target.digest == found->target.digest &&
        std::find(found->names.begin(), found->names.end(), r.name) == found->names.end())
      found->names.push_back(r.name);
  return std::move(*found);
}

namespace {

// A manifest's config and layers as GC references.
std::map<std::string, std::string> manifest_references(const Descriptor& config,
                                                       const std::vector<Descriptor>& layers) {
  std::map<std::string, std::string> labels{{"containerd.io/gc.ref.content.config", config.digest}};
  for (size_t i = 0; i < layers.size(); ++i)
    labels["containerd.io/gc.ref.content.l." + std::to_string(i)] = layers[i].digest;
  return labels;
}

}  // namespace

Status label_references(ContainerdRpc& rpc, const ResolvedImage& image) {
  DS_RETURN_IF_ERROR(rpc.set_content_labels(image.manifest.digest,
                                            manifest_references(image.config, image.layers)));
  if (!image.index_bytes.empty()) {
    std::map<std::string, std::string> index_labels;
    try {
      size_t i = 0;
      const Json index = Json::parse(image.index_bytes);  // named: the loop borrows from it
      for (const auto& m : index.at("manifests")) {
        std::string digest = m.value("digest", "");
        // Only what the store holds: a reference to a missing blob is harmless
        // to GC, but naming only present ones keeps the labels honest.
        if (!rpc.content_info(digest)) continue;
        index_labels["containerd.io/gc.ref.content.m." + std::to_string(i++)] = digest;
        // The other manifests held (attestations: BuildKit's provenance and
        // SBOM) keep their own blobs too.
        if (digest == image.manifest.digest) continue;
        Descriptor child = descriptor_of(m);
        auto bytes = read_document(rpc, child);
        if (!bytes) continue;
        const Json doc = Json::parse(*bytes);
        if (!doc.contains("config") || !doc.contains("layers")) continue;
        std::vector<Descriptor> layers;
        for (const auto& l : doc["layers"]) layers.push_back(descriptor_of(l));
        DS_RETURN_IF_ERROR(rpc.set_content_labels(
            digest, manifest_references(descriptor_of(doc["config"]), layers)));
      }
    } catch (const Json::exception& e) {
      return make_error(ErrorCode::kCorrupt, "index " + image.target.digest + ": " + e.what());
    }
    DS_RETURN_IF_ERROR(rpc.set_content_labels(image.target.digest, index_labels));
  }
  return ok_status();
}

Status unpack(ContainerdRpc& rpc, const ResolvedImage& image) {
  const std::vector<std::string> chain = chain_ids(image.diff_ids);
  const std::string& snapshotter = rpc.parsed().snapshotter;
  for (size_t i = 0; i < chain.size(); ++i) {
    auto present = rpc.stat_snapshot(chain[i]);
    if (present) continue;
    if (present.error().code() != ErrorCode::kNotFound) return present;
    const std::string parent = i == 0 ? std::string() : chain[i - 1];
    const std::string key =
        "extract-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) +
        " " + chain[i];
    DS_ASSIGN_OR_RETURN(auto mounts, rpc.prepare_snapshot(key, parent));
    auto applied = rpc.apply_layer(image.layers[i], mounts);
    Status done = ok_status();
    if (!applied) {
      done = std::unexpected(applied.error());
    } else if (*applied != image.diff_ids[i]) {
      done = make_error(ErrorCode::kVerifyFailed,
                        "layer " + std::to_string(i + 1) + " (" + image.layers[i].digest +
                            ") unpacked to " + *applied + ", not its diff_id " + image.diff_ids[i] +
                            "; nothing was committed");
    } else {
      done = rpc.commit_snapshot(chain[i], key, {});
      // Another unpack of the same layer committed first: that is ours too.
      if (!done && done.error().code() == ErrorCode::kEngine && rpc.stat_snapshot(chain[i]))
        done = ok_status();
    }
    if (!done) {
      (void)rpc.remove_snapshot(key);
      return with_context(std::move(done), "unpacking into the " + snapshotter + " snapshotter");
    }
    DS_RETURN_IF_ERROR(rpc.set_content_labels(image.layers[i].digest,
                                              {{"containerd.io/uncompressed", image.diff_ids[i]}}));
  }
  if (!chain.empty())
    DS_RETURN_IF_ERROR(rpc.set_content_labels(
        image.config.digest, {{"containerd.io/gc.ref.snapshot." + snapshotter, chain.back()}}));
  return ok_status();
}

}  // namespace deltasync::containerd_images
