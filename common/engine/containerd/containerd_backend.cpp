// EngineBackend for containerd's gRPC API (containerd:// addresses): what
// k3s and kubeadm nodes run as their only engine. The calls map onto
// containerd's services (containerd_rpc.h) without shelling out to ctr:
//   list/inspect  the images service, each target read down to this
//                 platform's manifest and config (containerd_images.h); the
//                 Id is the target's digest (manifest or index), as on
//                 Docker's containerd store, and the config digest (the
//                 kubelet's image ID) is reported beside it;
//   export        an OCI-layout tar of the image's documents and blobs, read
//                 from the content store (so a basis is read without a pull);
//   load          a partial import (containerd_import.h): only the blobs the
//                 content store lacks are written, then unpacked into the
//                 snapshotter so the kubelet can start the image;
//   tag/remove    image records (names are kept qualified,
//                 "docker.io/library/app:1", as the kubelet looks them up).
#include <nlohmann/json.hpp>

#include "common/engine/containerd/containerd_images.h"
#include "common/engine/containerd/containerd_import.h"
#include "common/engine/containerd/containerd_rpc.h"
#include "common/engine/engine_backend.h"
#include "common/image/manifest.h"
#include "common/image/oci_layout_writer.h"

namespace deltasync {

namespace {

using containerd_rpc::ContainerdRpc;

// Names that are tags ("docker.io/library/app:1"), not digests or IDs.
bool is_tag_name(const std::string& name) {
  return !name.starts_with("sha256:") && name.find('@') == std::string::npos;
}

std::vector<std::string> tags_of(const std::vector<std::string>& names) {
  std::vector<std::string> tags;
  for (const auto& n : names)
    if (is_tag_name(n)) tags.push_back(familiar_reference(n));
  return tags;
}

Result<BlobDescriptor> blob_descriptor(const containerd_rpc::Descriptor& d) {
  BlobDescriptor out;
  out.media_type = d.media_type;
  DS_ASSIGN_OR_RETURN(out.digest, Digest::parse(d.digest));
  out.size = static_cast<uint64_t>(d.size);
  return out;
}

class ContainerdBackend final : public EngineBackend {
 public:
  ContainerdBackend(EngineOptions options, Result<engine_detail::ContainerdAddress> parsed)
      : options_(std::move(options)), parsed_(std::move(parsed)) {
    if (parsed_) rpc_ = std::make_unique<ContainerdRpc>(options_, *parsed_);
  }

  Status ping() override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_RETURN_IF_ERROR(rpc->version());
    return ok_status();
  }

  Result<EngineVersion> version() override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto v, rpc->version());
    EngineVersion out;
    out.version = v.first;
    out.api_version = "containerd API v1";
    out.os = "linux";
    out.arch = std::string(host_architecture());
    return out;
  }

  Result<EngineInfo> info() override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto v, rpc->version());
    EngineInfo info;
    info.server_version = v.first;
    info.driver = rpc->parsed().snapshotter + " snapshotter, namespace " + rpc->parsed().name_space;
    info.store = ImageStoreKind::kContainerd;
    info.is_containerd = true;
    return info;
  }

  Result<std::vector<EngineImageSummary>> list_images() override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto records, rpc->list_images());
    std::vector<EngineImageSummary> out;
    std::map<std::string, size_t> by_target;
    for (const auto& r : records) {
      auto [it, fresh] = by_target.try_emplace(r.target.digest, out.size());
      if (fresh) {
        EngineImageSummary summary;
        summary.id = r.target.digest;
        summary.created = r.created_seconds;
        out.push_back(std::move(summary));
      }
      if (is_tag_name(r.name)) out[it->second].repo_tags.push_back(familiar_reference(r.name));
    }
    return out;
  }

  Result<EngineImageDetail> inspect_image(const std::string& name) override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto image, containerd_images::find(*rpc, name, ""));
    EngineImageDetail detail;
    detail.id = image.target.digest;
    detail.repo_tags = tags_of(image.names);
    detail.diff_ids = image.diff_ids;
    detail.os = image.os;
    detail.architecture = image.architecture;
    detail.config_digest = image.config.digest;
    for (const auto& l : image.layers) detail.size += l.size;
    return detail;
  }

  Status export_image(const std::string& name, ByteSink& out,
                      const std::string& platform) override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto image, containerd_images::find(*rpc, name, platform));
    OciLayoutWriter writer(out);
    if (!image.index_bytes.empty()) DS_RETURN_IF_ERROR(writer.add_blob(image.index_bytes));
    DS_RETURN_IF_ERROR(writer.add_blob(image.manifest_bytes));
    DS_RETURN_IF_ERROR(writer.add_blob(image.config_bytes));
    for (size_t i = 0; i < image.layers.size(); ++i) {
      const auto& layer = image.layers[i];
      DS_ASSIGN_OR_RETURN(BlobDescriptor blob, blob_descriptor(layer));
      auto source = rpc->open_blob(layer.digest, layer.size);
      DS_RETURN_IF_ERROR(with_context(writer.add_blob(blob.digest, blob.size, *source),
                                      "exporting layer " + std::to_string(i + 1) + " of " + name));
    }
    DS_ASSIGN_OR_RETURN(BlobDescriptor target, blob_descriptor(image.target));
    std::vector<std::string> tags = tags_of(image.names);
    // The name asked for first, so a reader selecting by it finds it.
    if (is_tag_name(name)) {
      std::string asked = familiar_reference(name);
      std::erase(tags, asked);
      tags.insert(tags.begin(), asked);
    }
    return writer.finish(target, tags);
  }

  Result<std::vector<std::string>> load_image(ByteSource& archive) override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    return containerd_import::import_oci_archive(*rpc, archive);
  }

  Status tag_image(const std::string& source, const std::string& target) override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    DS_ASSIGN_OR_RETURN(auto image, containerd_images::find(*rpc, source, ""));
    DS_RETURN_IF_ERROR(engine_detail::split_tag_target(target));
    containerd_rpc::ImageRecord record;
    record.name = engine_detail::qualified_name(target);
    record.target = image.target;
    if (rpc->parsed().name_space == "k8s.io") record.labels["io.cri-containerd.image"] = "managed";
    return rpc->put_image(record);
  }

  Status remove_image(const std::string& name, bool force) override {
    (void)force;  // containerd removes a name whatever runs from it
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    if (!name.starts_with("sha256:")) {
      auto removed = rpc->delete_image(engine_detail::qualified_name(name));
      if (!removed && removed.error().code() == ErrorCode::kNotFound)
        return make_error(ErrorCode::kNotFound,
                          "no such image " + name + " in containerd at " + options_.address);
      return removed;
    }
    // By ID: every name of that image.
    DS_ASSIGN_OR_RETURN(auto image, containerd_images::find(*rpc, name, ""));
    for (const auto& n : image.names) DS_RETURN_IF_ERROR(rpc->delete_image(n));
    return ok_status();
  }

  Result<bool> has_blob(const std::string& digest) override {
    DS_ASSIGN_OR_RETURN(ContainerdRpc * rpc, connected());
    auto info = rpc->content_info(digest);
    if (info) return true;
    if (info.error().code() == ErrorCode::kNotFound) return false;
    return std::unexpected(info.error());
  }

 private:
  Result<ContainerdRpc*> connected() {
    if (!parsed_) return std::unexpected(parsed_.error());
    return rpc_.get();
  }

  EngineOptions options_;
  Result<engine_detail::ContainerdAddress> parsed_;
  std::unique_ptr<ContainerdRpc> rpc_;
};

}  // namespace

std::unique_ptr<EngineBackend> make_containerd_backend(EngineOptions options) {
  auto parsed = engine_detail::parse_containerd_address(options.address);
  return std::make_unique<ContainerdBackend>(std::move(options), std::move(parsed));
}

}  // namespace deltasync
