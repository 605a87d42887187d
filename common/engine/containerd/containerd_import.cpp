// The partial import of an OCI layout into containerd; see the header.
#include "common/engine/containerd/containerd_import.h"

#include <map>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/engine/containerd/containerd_images.h"
#include "common/image/manifest.h"
#include "common/tar/tar_stream_reader.h"

namespace deltasync::containerd_import {

using containerd_rpc::ContainerdRpc;
using containerd_rpc::Descriptor;
using Json = nlohmann::json;

namespace {

constexpr uint64_t kMaxInMemory = 4 << 20;  // documents, configs, small layers
constexpr auto kLeaseTtl = std::chrono::hours(24);

Result<bool> store_has(ContainerdRpc& rpc, const std::string& digest) {
  auto info = rpc.content_info(digest);
  if (info) return true;
  if (info.error().code() == ErrorCode::kNotFound) return false;
  return std::unexpected(info.error());
}

// Writes every blob member the store lacks; returns index.json.
Result<std::string> write_blobs(ContainerdRpc& rpc, ByteSource& archive, size_t* written,
                                size_t* reused) {
  TarStreamReader tar(archive, "the image archive");
  std::optional<std::string> index_json;
  for (;;) {
    DS_ASSIGN_OR_RETURN(auto entry, tar.next());
    if (!entry) break;
    const std::string path = entry->normalized_path();
    if (path == "index.json") {
      DS_ASSIGN_OR_RETURN(std::string bytes,
                          with_context(read_all(tar.payload(), kMaxJsonBytes), "index.json"));
      index_json = std::move(bytes);
      continue;
    }
    if (!entry->is_regular() || !path.starts_with("blobs/sha256/")) continue;
    auto digest = Digest::parse("sha256:" + path.substr(13));
    if (!digest)
      return make_error(ErrorCode::kCorrupt,
                        "the image archive: member " + path + " is not named by a sha256 digest");
    const std::string name = digest->str();
    DS_ASSIGN_OR_RETURN(bool present, store_has(rpc, name));
    // Held already: leased, so GC cannot take it (an image removed a moment
    // ago) before our image refers to it; if it went meanwhile, write it.
    if (present) {
      auto leased = rpc.lease_content(name);
      if (leased) {
        ++*reused;
        continue;  // next() reads past it
      }
      if (leased.error().code() != ErrorCode::kNotFound) return std::unexpected(leased.error());
    }
    const auto size = static_cast<int64_t>(entry->size);
    if (entry->size <= kMaxInMemory) {
      DS_ASSIGN_OR_RETURN(std::string bytes, read_all(tar.payload(), kMaxInMemory));
      if (Digest::of(bytes) != *digest)
        return make_error(ErrorCode::kVerifyFailed,
                          "the image archive: blob " + name + " does not hash to its name");
      MemorySource source(bytes);
      DS_RETURN_IF_ERROR(rpc.write_blob(name, size, source, {}));
    } else {
      DS_RETURN_IF_ERROR(rpc.write_blob(name, size, tar.payload(), {}));
    }
    ++*written;
  }
  if (!index_json)
    return make_error(ErrorCode::kUnsupported,
                      "the image archive has no index.json: containerd loads take an OCI image "
                      "layout (deltasync writes one for containerd sites)");
  return std::move(*index_json);
}

// Every blob the platform manifest needs is in the store, and leased.
Status check_complete(ContainerdRpc& rpc, const containerd_images::ResolvedImage& image) {
  for (size_t i = 0; i < image.layers.size(); ++i) {
    auto leased = rpc.lease_content(image.layers[i].digest);
    if (!leased && leased.error().code() != ErrorCode::kNotFound) return leased;
    if (!leased)
      return make_error(ErrorCode::kNotFound,
                        "layer " + std::to_string(i + 1) + " blob " + image.layers[i].digest +
                            " is neither in the archive nor in containerd at " + rpc.address());
  }
  return ok_status();
}

}  // namespace

Result<std::vector<std::string>> import_oci_archive(ContainerdRpc& rpc, ByteSource& archive) {
  DS_RETURN_IF_ERROR(rpc.begin_lease(kLeaseTtl));
  size_t written = 0, reused = 0;
  auto loaded = [&]() -> Result<std::vector<std::string>> {
    DS_ASSIGN_OR_RETURN(std::string index_json, write_blobs(rpc, archive, &written, &reused));
    std::vector<std::string> messages;
    try {
      Json index = Json::parse(index_json);
      for (const auto& m : index.at("manifests")) {
        Descriptor target;
        target.media_type = m.value("mediaType", "");
        target.digest = m.value("digest", "");
        target.size = m.value("size", int64_t{0});
        DS_ASSIGN_OR_RETURN(auto image, with_context(containerd_images::resolve(rpc, target, ""),
                                                     "the archive's image " + target.digest));
        DS_RETURN_IF_ERROR(check_complete(rpc, image));
        DS_RETURN_IF_ERROR(containerd_images::label_references(rpc, image));
        DS_RETURN_IF_ERROR(containerd_images::unpack(rpc, image));
        std::vector<std::string> names;
        // io.containerd.image.name is a full reference; OCI's ref.name is
        // often only a tag ("2.0"), so it counts only when it is more.
        if (auto a = m.find("annotations"); a != m.end() && a->is_object()) {
          std::string name = a->value("io.containerd.image.name", "");
          std::string ref = a->value("org.opencontainers.image.ref.name", "");
          if (name.empty() && ref.find_first_of(":/") != std::string::npos) name = ref;
          if (!name.empty()) names.push_back(engine_detail::qualified_name(name));
        }
        if (names.empty()) names.push_back(image.config.digest);
        for (const auto& name : names) {
          containerd_rpc::ImageRecord record;
          record.name = name;
          record.target = target;
          if (rpc.parsed().name_space == "k8s.io")
            record.labels["io.cri-containerd.image"] = "managed";
          DS_RETURN_IF_ERROR(rpc.put_image(record));
          messages.push_back("Loaded image: " + familiar_reference(name));
        }
      }
    } catch (const Json::exception& e) {
      return make_error(ErrorCode::kCorrupt,
                        std::string("the image archive's index.json: ") + e.what());
    }
    messages.push_back("blobs written: " + std::to_string(written) +
                       ", already in the content store: " + std::to_string(reused));
    return messages;
  }();
  Status ended = rpc.end_lease();
  if (!loaded) return loaded;
  DS_RETURN_IF_ERROR(ended);
  return loaded;
}

}  // namespace deltasync::containerd_import
