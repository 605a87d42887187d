// OciArchiveWriter: an OCI image layout in a tar whose manifest we write
// ourselves, so the image ID a containerd-backed store gives it (the
// manifest digest) is known before the load and checked after it. The
// manifest is canonical JSON of fixed field order (nlohmann's sorted keys),
// uncompressed layers, config media type as OCI: a pure function of the
// config bytes and the layer sizes. The tar itself is OciLayoutWriter's: the
// blobs/ directories, the config, the layers (each once), then the manifest,
// index.json, oci-layout.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/image/image.h"
#include "common/image/manifest.h"
#include "common/image/oci_layout_writer.h"

namespace deltasync {

namespace {
constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kConfigType = "application/vnd.oci.image.config.v1+json";
constexpr const char* kLayerType = "application/vnd.oci.image.layer.v1.tar";
}  // namespace

Result<std::unique_ptr<OciArchiveWriter>> OciArchiveWriter::create(
    ByteSink& out, std::string config_bytes, const std::vector<LayerSize>& layers,
    std::vector<std::string> tags) {
  DS_ASSIGN_OR_RETURN(auto chain,
                      with_context(parse_config_diff_ids(config_bytes), "OCI archive writer"));
  if (chain.size() != layers.size())
    return make_error(ErrorCode::kCorrupt, "OCI archive writer: the config lists " +
                                               std::to_string(chain.size()) + " layers, " +
                                               std::to_string(layers.size()) + " given");
  nlohmann::json layer_list = nlohmann::json::array();
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i] != layers[i].diff_id)
      return make_error(ErrorCode::kCorrupt, "OCI archive writer: layer " + std::to_string(i + 1) +
                                                 " is not the config's " + chain[i].str());
    layer_list.push_back(
        {{"mediaType", kLayerType}, {"digest", layers[i].diff_id.str()}, {"size", layers[i].size}});
  }
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kManifestType},
      {"config",
       {{"mediaType", kConfigType},
        {"digest", Digest::of(config_bytes).str()},
        {"size", config_bytes.size()}}},
      {"layers", layer_list},
  };
  return std::unique_ptr<OciArchiveWriter>(
      new OciArchiveWriter(out, std::move(config_bytes), layers, std::move(tags), manifest.dump()));
}

OciArchiveWriter::OciArchiveWriter(ByteSink& out, std::string config_bytes,
                                   std::vector<LayerSize> layers, std::vector<std::string> tags,
                                   std::string manifest)
    : layout_(out),
      config_bytes_(std::move(config_bytes)),
      layers_(std::move(layers)),
      tags_(std::move(tags)),
      manifest_(std::move(manifest)),
      manifest_digest_(Digest::of(manifest_)) {}

Status OciArchiveWriter::add_layer(const Digest& diff_id, uint64_t size, ByteSource& content) {
  if (failed_) return make_error(ErrorCode::kInternal, "OCI archive writer used after it failed");
  std::string what =
      "OCI archive writer: layer " + std::to_string(next_ + 1) + " (" + diff_id.str() + ")";
  if (next_ >= layers_.size() || layers_[next_].diff_id != diff_id || layers_[next_].size != size)
    return make_error(ErrorCode::kInvalidArgument, what + ": not the next layer of the manifest");
  failed_ = true;
  if (!started_) {
    DS_RETURN_IF_ERROR(layout_.add_blob(config_bytes_));
    started_ = true;
  }
  ++next_;
  // The layout writer checks the digest and writes a repeated layer once.
  DS_RETURN_IF_ERROR(with_context(layout_.add_blob(diff_id, size, content), what));
  failed_ = false;
  return ok_status();
}

Status OciArchiveWriter::skip_layer(const Digest& diff_id) {
  if (failed_) return make_error(ErrorCode::kInternal, "OCI archive writer used after it failed");
  if (next_ >= layers_.size() || layers_[next_].diff_id != diff_id)
    return make_error(ErrorCode::kInvalidArgument, "OCI archive writer: layer " +
                                                       std::to_string(next_ + 1) + " (" +
                                                       diff_id.str() +
                                                       "): not the next layer of the manifest");
  if (!started_) {
    failed_ = true;
    DS_RETURN_IF_ERROR(layout_.add_blob(config_bytes_));
    started_ = true;
    failed_ = false;
  }
  ++next_;
  return ok_status();
}

Status OciArchiveWriter::finish() {
  if (failed_ || next_ != layers_.size() || !started_)
    return make_error(ErrorCode::kInvalidArgument, "OCI archive writer: " + std::to_string(next_) +
                                                       " of " + std::to_string(layers_.size()) +
                                                       " layers written");
  DS_RETURN_IF_ERROR(layout_.add_blob(manifest_));
  return layout_.finish({kManifestType, manifest_digest_, manifest_.size()}, tags_);
}

}  // namespace deltasync
