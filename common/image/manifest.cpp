// Parses docker manifest.json, OCI index.json / image index / image manifest
// and image configs into an ImageLayout and ImageInfo (see manifest.h).
// nlohmann-json is used with exceptions caught here, so none escape; field
// access goes through small checked helpers so a wrong type is a clear
// kCorrupt message, not a type_error.
#include "common/image/manifest.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "common/tar/tar_entry.h"

namespace deltasync {

namespace {

using nlohmann::json;

constexpr int kMaxIndexDepth = 4;

Result<json> parse_json(std::string_view text, const std::string& what) {
  try {
    json doc = json::parse(text);
    if (!doc.is_object() && !doc.is_array()) {
      return make_error(ErrorCode::kCorrupt, what + ": expected a JSON object or array");
    }
    return doc;
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kCorrupt, what + ": not valid JSON (" + e.what() + ")");
  }
}

// The value at `key` of an object, or nullptr when absent or null.
const json* field(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Result<std::string> string_field(const json& obj, const char* key, const std::string& what) {
  const json* value = field(obj, key);
  if (!value || !value->is_string()) {
    return make_error(ErrorCode::kCorrupt, what + ": missing string field \"" + key + "\"");
  }
  return value->get<std::string>();
}

std::string optional_string(const json& obj, const char* key) {
  const json* value = field(obj, key);
  return value && value->is_string() ? value->get<std::string>() : std::string();
}

// An array of strings; absent or null is empty.
Result<std::vector<std::string>> string_array(const json& obj, const char* key,
                                              const std::string& what) {
  std::vector<std::string> out;
  const json* value = field(obj, key);
  if (!value) return out;
  if (!value->is_array()) {
    return make_error(ErrorCode::kCorrupt, what + ": \"" + key + "\" is not an array");
  }
  for (const json& item : *value) {
    if (!item.is_string()) {
      return make_error(ErrorCode::kCorrupt, what + ": \"" + key + "\" holds a non-string");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out.empty() ? "none" : out;
}

// ---- OCI descriptors --------------------------------------------------------

constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::string os, architecture, variant;

  std::string member() const { return "blobs/sha256/" + digest.hex(); }
  std::string platform() const {
    return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
  }
  bool is_index() const { return media_type == kOciIndex || media_type == kDockerList; }
  bool is_attestation() const {
    auto it = annotations.find("vnd.docker.reference.type");
    return (it != annotations.end() && it->second == "attestation-manifest") ||
           (os == "unknown" && architecture == "unknown");
  }
  std::string annotation(const std::string& key) const {
    auto it = annotations.find(key);
    return it == annotations.end() ? std::string() : it->second;
  }
};

Result<Descriptor> parse_descriptor(const json& obj, const std::string& what) {
  if (!obj.is_object())
    return make_error(ErrorCode::kCorrupt, what + ": descriptor is not an object");
  Descriptor d;
  d.media_type = optional_string(obj, "mediaType");
  DS_ASSIGN_OR_RETURN(std::string digest, string_field(obj, "digest", what));
  if (!digest.starts_with("sha256:")) {
    return make_error(ErrorCode::kUnsupported,
                      what + ": digest " + digest + " is not sha256, which deltasync requires");
  }
  DS_ASSIGN_OR_RETURN(d.digest, with_context(Digest::parse(digest), what));
  const json* size = field(obj, "size");
  if (!size || !size->is_number_unsigned()) {
    return make_error(ErrorCode::kCorrupt, what + ": missing or negative \"size\"");
  }
  d.size = size->get<uint64_t>();
  if (const json* ann = field(obj, "annotations"); ann && ann->is_object()) {
    for (const auto& [key, value] : ann->items()) {
      if (value.is_string()) d.annotations[key] = value.get<std::string>();
    }
  }
  if (const json* platform = field(obj, "platform"); platform && platform->is_object()) {
    d.os = optional_string(*platform, "os");
    d.architecture = optional_string(*platform, "architecture");
    d.variant = optional_string(*platform, "variant");
  }
  return d;
}

// Reads a small content-addressed blob and checks its size and digest.
Result<std::string> read_blob(MemberStore& store, const Descriptor& d, const std::string& what) {
  if (d.size > kMaxJsonBytes) {
    return make_error(ErrorCode::kCorrupt, what + ": " + std::to_string(d.size) +
                                               " bytes is more than the limit of " +
                                               std::to_string(kMaxJsonBytes));
  }
  DS_ASSIGN_OR_RETURN(std::string bytes,
                      with_context(store.read_small(d.member(), kMaxJsonBytes), what));
  if (bytes.size() != d.size) {
    return make_error(ErrorCode::kCorrupt,
                      what + ": blob " + d.member() + " is " + std::to_string(bytes.size()) +
                          " bytes, its descriptor says " + std::to_string(d.size));
  }
  Digest actual = Digest::of(bytes);
  if (actual != d.digest) {
    return make_error(ErrorCode::kCorrupt, what + ": blob " + d.member() + " hashes to " +
                                               actual.str() + ", expected " + d.digest.str());
  }
  return bytes;
}

std::vector<std::string> tags_of(const Descriptor& d) {
  std::string name = d.annotation("io.containerd.image.name");
  if (name.empty()) {
    name = d.annotation("org.opencontainers.image.ref.name");
    // A bare tag ("1.0", as docker save writes it) names no repository.
    if (name.find_first_of(":/@") == std::string::npos) name.clear();
  }
  if (name.empty() || name.find('@') != std::string::npos) return {};
  return {familiar_reference(name)};
}

bool descriptor_matches(const Descriptor& d, std::string_view selector) {
  for (const char* key : {"org.opencontainers.image.ref.name", "io.containerd.image.name"}) {
    std::string name = d.annotation(key);
    if (!name.empty() && (name == selector || reference_matches(selector, name))) return true;
  }
  return false;
}

std::string describe_choices(const std::vector<Descriptor>& list) {
  std::vector<std::string> names;
  for (const auto& d : list) {
    std::string name = d.annotation("io.containerd.image.name");
    if (name.empty()) name = d.annotation("org.opencontainers.image.ref.name");
    if (name.empty() && !d.os.empty()) name = d.platform();
    if (name.empty()) name = d.digest.short_str();
    names.push_back(name);
  }
  return join(names);
}

// Picks one descriptor of an index's list: by selector, else the only one (or
// several naming the same digest), else this host's platform among those
// whose blob the layout holds.
Result<Descriptor> choose_descriptor(MemberStore& store, std::vector<Descriptor> list,
                                     std::string_view selector, const std::string& what,
                                     std::string_view platform = "") {
  if (!selector.empty()) {
    std::vector<Descriptor> matching;
    for (const auto& d : list) {
      if (descriptor_matches(d, selector)) matching.push_back(d);
    }
    if (matching.empty()) {
      return make_error(ErrorCode::kNotFound, what + ": no image named " + std::string(selector) +
                                                  " (it holds: " + describe_choices(list) + ")");
    }
    list = std::move(matching);
  }
  std::erase_if(list, [](const Descriptor& d) { return d.is_attestation(); });
  if (list.empty()) return make_error(ErrorCode::kCorrupt, what + ": lists no image manifests");
  bool all_same = std::all_of(list.begin(), list.end(),
                              [&](const Descriptor& d) { return d.digest == list[0].digest; });
  if (all_same && platform.empty()) return list[0];
  if (!platform.empty()) {
    // The platform asked for (--platform), present or not: its absence is
    // an error naming what the layout holds.
    for (const auto& d : list) {
      if (d.os.empty()) continue;
      if (d.platform() == platform ||
          (d.variant.empty() == false && d.os + "/" + d.architecture == platform)) {
        DS_ASSIGN_OR_RETURN(auto size, store.size_of(d.member()));
        if (size) return d;
      }
    }
    if (all_same) return list[0];  // an entry naming a single manifest, checked later
    return make_error(ErrorCode::kNotFound, what + ": holds no image for " + std::string(platform) +
                                                " (it lists: " + describe_choices(list) + ")");
  }

  std::vector<Descriptor> present;
  for (const auto& d : list) {
    DS_ASSIGN_OR_RETURN(auto size, store.size_of(d.member()));
    if (size) present.push_back(d);
  }
  for (const auto& d : present) {
    if (d.os == "linux" && d.architecture == host_architecture()) return d;
  }
  if (present.size() == 1) return present[0];
  if (present.empty()) {
    return make_error(ErrorCode::kCorrupt, what + ": lists " + describe_choices(list) +
                                               " but holds none of their manifests");
  }
  return make_error(ErrorCode::kInvalidArgument,
                    what + ": holds several images (" + describe_choices(present) +
                        ") and none is for linux/" + std::string(host_architecture()) +
                        "; name one (oci:DIR:REF or docker-archive:PATH:REF)");
}

Result<std::vector<Descriptor>> parse_descriptor_list(const json& doc, const char* key,
                                                      const std::string& what) {
  const json* list = field(doc, key);
  if (!list || !list->is_array()) {
    return make_error(ErrorCode::kCorrupt, what + ": missing \"" + std::string(key) + "\" array");
  }
  std::vector<Descriptor> out;
  for (size_t i = 0; i < list->size(); ++i) {
    DS_ASSIGN_OR_RETURN(Descriptor d, parse_descriptor((*list)[i], what + ": " + key + "[" +
                                                                       std::to_string(i) + "]"));
    out.push_back(std::move(d));
  }
  return out;
}

bool supported_layer_type(const std::string& media_type) {
  static constexpr std::string_view kTypes[] = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.diff.tar.zstd",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  return media_type.empty() ||
         std::find(std::begin(kTypes), std::end(kTypes), media_type) != std::end(kTypes);
}

// Follows a descriptor through nested indexes down to an image manifest.
Result<ImageLayout> resolve_manifest(MemberStore& store, const Descriptor& d, int depth,
                                     const std::string& what, std::string_view platform) {
  if (depth > kMaxIndexDepth) {
    return make_error(ErrorCode::kCorrupt, what + ": image indexes nest too deeply");
  }
  std::string blob_what = what + " -> " + (d.is_index() ? "index " : "manifest ") + d.digest.str();
  DS_ASSIGN_OR_RETURN(std::string bytes, read_blob(store, d, blob_what));
  DS_ASSIGN_OR_RETURN(json doc, parse_json(bytes, blob_what));
  std::string media_type = d.media_type.empty() ? optional_string(doc, "mediaType") : d.media_type;
  if (media_type == kOciIndex || media_type == kDockerList ||
      (media_type.empty() && field(doc, "manifests"))) {
    DS_ASSIGN_OR_RETURN(auto list, parse_descriptor_list(doc, "manifests", blob_what));
    DS_ASSIGN_OR_RETURN(Descriptor chosen,
                        choose_descriptor(store, std::move(list), "", blob_what, platform));
    return resolve_manifest(store, chosen, depth + 1, blob_what, platform);
  }
  const json* config = field(doc, "config");
  if (!config) return make_error(ErrorCode::kCorrupt, blob_what + ": missing \"config\"");
  DS_ASSIGN_OR_RETURN(Descriptor config_d, parse_descriptor(*config, blob_what + ": config"));
  DS_ASSIGN_OR_RETURN(auto layers, parse_descriptor_list(doc, "layers", blob_what));
  ImageLayout layout;
  layout.document = blob_what;
  layout.config_member = config_d.member();
  layout.config_digest = config_d.digest;
  layout.config_size = config_d.size;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!supported_layer_type(layers[i].media_type)) {
      return make_error(ErrorCode::kUnsupported,
                        blob_what + ": layer " + std::to_string(i + 1) + " has media type " +
                            layers[i].media_type +
                            ", which deltasync cannot read (plain, gzip or zstd tar only)");
    }
    layout.layers.push_back({layers[i].member(), layers[i].size, layers[i].media_type});
  }
  return layout;
}

// "blobs/sha256/<hex>" or "<hex>.json" names its content's digest.
std::optional<Digest> digest_from_member_name(std::string_view name) {
  std::string normal = normalize_tar_path(name);
  std::string_view view = normal;
  if (view.starts_with("blobs/sha256/"))
    view.remove_prefix(13);
  else if (view.ends_with(".json"))
    view.remove_suffix(5);
  auto digest = Digest::parse(view, /*allow_bare=*/true);
  if (!digest) return std::nullopt;
  return *digest;
}

}  // namespace

std::string_view host_architecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__powerpc64__)
  return "ppc64le";
#elif defined(__riscv)
  return "riscv64";
#else
  return "amd64";
#endif
}

std::string familiar_reference(std::string_view name) {
  std::string out(name);
  for (std::string_view prefix :
       {"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"}) {
    if (out.starts_with(prefix)) {
      out.erase(0, prefix.size());
      break;
    }
  }
  size_t slash = out.rfind('/');
  size_t last = slash == std::string::npos ? 0 : slash;
  if (!out.empty() && out.find(':', last) == std::string::npos &&
      out.find('@') == std::string::npos) {
    out += ":latest";
  }
  return out;
}

bool reference_matches(std::string_view selector, std::string_view name) {
  return selector == name || familiar_reference(selector) == familiar_reference(name);
}

Result<ImageLayout> read_docker_archive_layout(MemberStore& store, std::string_view selector,
                                               std::string_view platform) {
  DS_ASSIGN_OR_RETURN(auto manifest_size, store.size_of("manifest.json"));
  DS_ASSIGN_OR_RETURN(auto oci_index_size, store.size_of("index.json"));
  // manifest.json names one platform per image; a platform asked for is
  // looked up in the OCI index when the archive has one.
  if (!platform.empty() && oci_index_size) return read_oci_layout(store, selector, platform);
  if (!manifest_size) {
    DS_ASSIGN_OR_RETURN(auto index_size, store.size_of("index.json"));
    if (!index_size) {
      return make_error(ErrorCode::kCorrupt,
                        "neither manifest.json nor index.json is in the archive, so it is not "
                        "a docker save archive (or it is truncated)");
    }
    return read_oci_layout(store, selector, platform);
  }
  const std::string what = "manifest.json";
  DS_ASSIGN_OR_RETURN(std::string bytes, with_context(store.read_small(what, kMaxJsonBytes), what));
  DS_ASSIGN_OR_RETURN(json doc, parse_json(bytes, what));
  if (!doc.is_array() || doc.empty()) {
    return make_error(ErrorCode::kCorrupt, what + ": expected a non-empty array of images");
  }
  struct Entry {
    std::string config;
    std::vector<std::string> tags, layers;
  };
  std::vector<Entry> entries;
  for (size_t i = 0; i < doc.size(); ++i) {
    std::string entry_what = what + "[" + std::to_string(i) + "]";
    Entry e;
    DS_ASSIGN_OR_RETURN(e.config, string_field(doc[i], "Config", entry_what));
    DS_ASSIGN_OR_RETURN(e.tags, string_array(doc[i], "RepoTags", entry_what));
    DS_ASSIGN_OR_RETURN(e.layers, string_array(doc[i], "Layers", entry_what));
    entries.push_back(std::move(e));
  }
  const Entry* chosen = nullptr;
  if (!selector.empty()) {
    for (const auto& e : entries) {
      for (const auto& tag : e.tags) {
        if (!chosen && reference_matches(selector, tag)) chosen = &e;
      }
    }
    if (!chosen) {
      std::vector<std::string> all;
      for (const auto& e : entries) all.insert(all.end(), e.tags.begin(), e.tags.end());
      return make_error(ErrorCode::kNotFound, what + ": no image tagged " + std::string(selector) +
                                                  " (it holds: " + join(all) + ")");
    }
  } else if (entries.size() == 1) {
    chosen = &entries[0];
  } else {
    std::vector<std::string> all;
    for (const auto& e : entries) all.push_back(e.tags.empty() ? e.config : e.tags[0]);
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": the archive holds " + std::to_string(entries.size()) + " images (" +
                          join(all) + "); name one with docker-archive:PATH:REF");
  }
  ImageLayout layout;
  layout.document = what;
  layout.config_member = chosen->config;
  layout.config_digest = digest_from_member_name(chosen->config);
  // Familiar, like OCI names (tags_of): Podman's archives and ours name
  // "docker.io/library/app:1" what Docker's name "app:1".
  for (const auto& tag : chosen->tags) layout.tags.push_back(familiar_reference(tag));
  for (const auto& layer : chosen->layers) layout.layers.push_back({layer, std::nullopt, ""});
  return layout;
}

Result<ImageLayout> read_oci_layout(MemberStore& store, std::string_view selector,
                                    std::string_view platform) {
  const std::string what = "index.json";
  DS_ASSIGN_OR_RETURN(auto index_size, store.size_of(what));
  if (!index_size) {
    return make_error(ErrorCode::kCorrupt,
                      "no index.json, so this is not an OCI image layout (or it is truncated)");
  }
  DS_ASSIGN_OR_RETURN(std::string bytes, with_context(store.read_small(what, kMaxJsonBytes), what));
  DS_ASSIGN_OR_RETURN(json doc, parse_json(bytes, what));
  DS_ASSIGN_OR_RETURN(auto list, parse_descriptor_list(doc, "manifests", what));
  DS_ASSIGN_OR_RETURN(Descriptor chosen, choose_descriptor(store, list, selector, what, platform));
  DS_ASSIGN_OR_RETURN(ImageLayout layout, resolve_manifest(store, chosen, 0, what, platform));
  // Every entry naming the chosen digest contributes its tag.
  for (const auto& d : list) {
    if (d.digest != chosen.digest) continue;
    for (auto& tag : tags_of(d)) {
      if (std::find(layout.tags.begin(), layout.tags.end(), tag) == layout.tags.end()) {
        layout.tags.push_back(std::move(tag));
      }
    }
  }
  return layout;
}

namespace {

constexpr size_t kMaxDocumentBytes = 4 << 20;  // all documents of one identity

// Reads one manifest blob and, if it names `config`, its layer descriptors.
Result<std::optional<std::vector<Descriptor>>> manifest_layers_if_config(MemberStore& store,
                                                                         const Descriptor& d,
                                                                         const Digest& config,
                                                                         std::string* bytes_out) {
  DS_ASSIGN_OR_RETURN(auto size, store.size_of(d.member()));
  if (!size) return std::optional<std::vector<Descriptor>>();
  std::string what = "manifest " + d.digest.str();
  DS_ASSIGN_OR_RETURN(std::string bytes, read_blob(store, d, what));
  DS_ASSIGN_OR_RETURN(json doc, parse_json(bytes, what));
  const json* config_field = field(doc, "config");
  if (!config_field) return std::optional<std::vector<Descriptor>>();
  DS_ASSIGN_OR_RETURN(Descriptor config_d, parse_descriptor(*config_field, what + ": config"));
  if (config_d.digest != config) return std::optional<std::vector<Descriptor>>();
  DS_ASSIGN_OR_RETURN(auto layers, parse_descriptor_list(doc, "layers", what));
  *bytes_out = std::move(bytes);
  return std::optional<std::vector<Descriptor>>(std::move(layers));
}

// An attestation manifest and the blobs it names, when the store holds all
// of them within the budget; nothing otherwise (they are kept, not needed).
void add_attestation(MemberStore& store, const Descriptor& d, std::vector<std::string>& documents,
                     size_t& budget) {
  std::vector<std::string> found;
  size_t used = 0;
  auto take = [&](const Descriptor& blob) -> bool {
    if (blob.size > budget - used) return false;
    auto bytes = read_blob(store, blob, "attestation " + blob.digest.str());
    if (!bytes) return false;
    used += bytes->size();
    found.push_back(std::move(*bytes));
    return true;
  };
  auto size = store.size_of(d.member());
  if (!size || !*size || !take(d)) return;
  auto doc = parse_json(found.front(), "attestation manifest");
  if (!doc) return;
  std::vector<Descriptor> parts;
  if (const json* config = field(*doc, "config")) {
    auto c = parse_descriptor(*config, "attestation config");
    if (!c) return;
    parts.push_back(*c);
  }
  auto layers = parse_descriptor_list(*doc, "layers", "attestation manifest");
  if (!layers) return;
  parts.insert(parts.end(), layers->begin(), layers->end());
  for (const auto& part : parts) {
    auto part_size = store.size_of(part.member());
    if (!part_size || !*part_size || !take(part)) return;
  }
  budget -= used;
  for (auto& bytes : found) documents.push_back(std::move(bytes));
}

}  // namespace

Result<std::optional<DistributionIdentity>> read_distribution_identity(MemberStore& store,
                                                                       const ImageInfo& info,
                                                                       std::string_view selector) {
  using Found = std::optional<DistributionIdentity>;
  const std::string what = "index.json";
  DS_ASSIGN_OR_RETURN(auto index_size, store.size_of(what));
  if (!index_size) return Found();
  DS_ASSIGN_OR_RETURN(std::string index_bytes,
                      with_context(store.read_small(what, kMaxJsonBytes), what));
  DS_ASSIGN_OR_RETURN(json index_doc, parse_json(index_bytes, what));
  DS_ASSIGN_OR_RETURN(auto top, parse_descriptor_list(index_doc, "manifests", what));
  for (const Descriptor& entry : top) {
    if (!selector.empty() && !descriptor_matches(entry, selector) &&
        !std::any_of(top.begin(), top.end(), [&](const Descriptor& other) {
          return other.digest == entry.digest && descriptor_matches(other, selector);
        }))
      continue;
    DistributionIdentity identity;
    identity.target = {entry.media_type, entry.digest, entry.size};
    std::string manifest_bytes;
    std::optional<std::vector<Descriptor>> layers;
    std::vector<Descriptor> siblings;
    Descriptor manifest_d = entry;
    if (entry.is_index()) {
      DS_ASSIGN_OR_RETURN(auto size, store.size_of(entry.member()));
      if (!size) continue;
      std::string index_what = "index " + entry.digest.str();
      DS_ASSIGN_OR_RETURN(std::string bytes, read_blob(store, entry, index_what));
      DS_ASSIGN_OR_RETURN(json doc, parse_json(bytes, index_what));
      DS_ASSIGN_OR_RETURN(siblings, parse_descriptor_list(doc, "manifests", index_what));
      for (const Descriptor& child : siblings) {
        if (child.is_attestation() || child.is_index()) continue;
        DS_ASSIGN_OR_RETURN(
            layers, manifest_layers_if_config(store, child, info.image_id, &manifest_bytes));
        if (layers) {
          manifest_d = child;
          break;
        }
      }
      if (!layers) continue;
      identity.documents.push_back(std::move(bytes));
    } else {
      DS_ASSIGN_OR_RETURN(layers,
                          manifest_layers_if_config(store, entry, info.image_id, &manifest_bytes));
      if (!layers) continue;
    }
    if (layers->size() != info.layers.size()) {
      return make_error(ErrorCode::kCorrupt, "manifest " + manifest_d.digest.str() + " lists " +
                                                 std::to_string(layers->size()) +
                                                 " layers, its config " +
                                                 std::to_string(info.layers.size()));
    }
    identity.manifest_digest = manifest_d.digest;
    identity.platform =
        manifest_d.os.empty() ? info.os + "/" + info.architecture : manifest_d.platform();
    identity.documents.push_back(std::move(manifest_bytes));
    for (size_t i = 0; i < layers->size(); ++i) {
      const Descriptor& blob = (*layers)[i];
      identity.layers.push_back(
          {info.layers[i].diff_id, {blob.media_type, blob.digest, blob.size}, std::nullopt});
    }
    size_t budget = kMaxDocumentBytes;
    for (const Descriptor& child : siblings) {
      if (child.is_attestation() &&
          child.annotation("vnd.docker.reference.digest") == manifest_d.digest.str())
        add_attestation(store, child, identity.documents, budget);
    }
    return Found(std::move(identity));
  }
  return Found();
}

Result<std::vector<Digest>> parse_config_diff_ids(std::string_view config_bytes) {
  DS_ASSIGN_OR_RETURN(json config, parse_json(config_bytes, "image config"));
  const json* rootfs = field(config, "rootfs");
  if (!rootfs) return make_error(ErrorCode::kCorrupt, "image config: missing \"rootfs\"");
  DS_ASSIGN_OR_RETURN(auto texts, string_array(*rootfs, "diff_ids", "image config: rootfs"));
  std::vector<Digest> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    DS_ASSIGN_OR_RETURN(Digest d,
                        with_context(Digest::parse(texts[i]),
                                     "image config: rootfs.diff_ids[" + std::to_string(i) + "]"));
    out.push_back(d);
  }
  return out;
}

Result<ImageInfo> read_image_info(MemberStore& store, const ImageLayout& layout) {
  std::string what = "config " + layout.config_member + " (named by " + layout.document + ")";
  ImageInfo info;
  DS_ASSIGN_OR_RETURN(info.config_bytes,
                      with_context(store.read_small(layout.config_member, kMaxJsonBytes), what));
  if (layout.config_size && *layout.config_size != info.config_bytes.size()) {
    return make_error(ErrorCode::kCorrupt, what + ": " + std::to_string(info.config_bytes.size()) +
                                               " bytes, its descriptor says " +
                                               std::to_string(*layout.config_size));
  }
  info.image_id = Digest::of(info.config_bytes);
  if (layout.config_digest && *layout.config_digest != info.image_id) {
    return make_error(ErrorCode::kCorrupt, what + ": hashes to " + info.image_id.str() +
                                               ", but its name says " +
                                               layout.config_digest->str());
  }
  DS_ASSIGN_OR_RETURN(json config, parse_json(info.config_bytes, what));
  info.os = optional_string(config, "os");
  info.architecture = optional_string(config, "architecture");
  DS_ASSIGN_OR_RETURN(std::vector<Digest> diff_ids,
                      with_context(parse_config_diff_ids(info.config_bytes), what));
  if (diff_ids.size() != layout.layers.size()) {
    return make_error(ErrorCode::kCorrupt,
                      layout.document + " lists " + std::to_string(layout.layers.size()) +
                          " layers but " + what + " lists " + std::to_string(diff_ids.size()) +
                          " diff_ids; the archive is inconsistent");
  }
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    std::string layer_what = layout.document + ": layer " + std::to_string(i + 1);
    LayerInfo layer;
    layer.diff_id = diff_ids[i];
    layer.blob_name = layout.layers[i].member;
    DS_ASSIGN_OR_RETURN(layer.blob_size, with_context(store.require(layer.blob_name), layer_what));
    if (layout.layers[i].size && *layout.layers[i].size != layer.blob_size) {
      return make_error(ErrorCode::kCorrupt, layer_what + ": blob " + layer.blob_name + " is " +
                                                 std::to_string(layer.blob_size) +
                                                 " bytes, its descriptor says " +
                                                 std::to_string(*layout.layers[i].size));
    }
    info.layers.push_back(std::move(layer));
  }
  info.tags = layout.tags;
  return info;
}

}  // namespace deltasync
