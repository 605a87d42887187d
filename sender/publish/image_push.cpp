// Steps (image_push.h): resolve the tag; if it already names this config,
// stop. Otherwise upload the config and every layer blob the registry
// lacks, then the manifest under its digest and the tag. Layers of a
// classic-store image are gzip-compressed to a scratch file first, hashing
// as they are written, since a registry needs a blob's digest before it
// takes the upload; the file is removed as soon as it is uploaded.
#include "sender/publish/image_push.h"

#include <fcntl.h>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/codec/compression.h"
#include "common/io/file.h"
#include "common/registry/registry_image.h"

namespace deltasync {

namespace {

using Json = nlohmann::json;

struct Blob {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
};

Status count_upload(Result<bool> uploaded, uint64_t size, PushedImage& out) {
  if (!uploaded) return std::unexpected(uploaded.error());
  if (*uploaded) {
    ++out.blobs_uploaded;
    out.bytes_uploaded += size;
  }
  return ok_status();
}

// gzip of layer `i` into a scratch file, then uploaded from it.
Result<Blob> push_compressed_layer(RegistryClient& client, const std::string& repository,
                                   ImageReader& image, size_t i,
                                   const std::filesystem::path& scratch_dir, PushedImage& out) {
  const Digest& diff_id = image.info().layers[i].diff_id;
  std::string name = "layer " + std::to_string(i + 1) + " (" + diff_id.short_str() + ")";
  auto path = scratch_dir / ("push-" + diff_id.hex() + ".gz");
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(errno_error(errno, "creating " + path.string()));
  struct Remove {
    std::filesystem::path p;
    ~Remove() {
      std::error_code ec;
      std::filesystem::remove(p, ec);
    }
  } remove{path};
  Blob blob;
  {
    FdSink file(UniqueFd(fd), path.string());
    HashingSink hashed(&file);
    auto gzip = make_gzip_sink(hashed, 6);
    DS_ASSIGN_OR_RETURN(auto layer, image.open_layer(i));
    DS_RETURN_IF_ERROR(with_context(copy_all(*layer, *gzip), name));
    DS_RETURN_IF_ERROR(gzip->finish());
    blob.digest = hashed.digest();
    blob.size = hashed.bytes();
  }
  blob.media_type = media_type::kDockerLayerGzip;
  DS_ASSIGN_OR_RETURN(auto source, open_file_source(path));
  DS_RETURN_IF_ERROR(with_context(
      count_upload(client.push_blob(repository, blob.digest, blob.size, *source), blob.size, out),
      name));
  return blob;
}

}  // namespace

Result<PushedImage> push_image(RegistryClient& client, const std::string& repository,
                               const std::string& tag, ImageReader& image,
                               const std::filesystem::path& scratch_dir) {
  const ImageInfo& info = image.info();
  PushedImage out;
  std::string platform = info.os.empty() ? "" : info.os + "/" + info.architecture;
  auto existing = resolve_registry_image(client, repository, tag, platform);
  if (existing && *existing && (*existing)->config_digest == info.image_id) {
    out.already_there = true;
    out.manifest.media_type = (*existing)->manifest.media_type;
    out.manifest.digest = (*existing)->manifest.digest;
    out.manifest.size = (*existing)->manifest.body.size();
    return out;
  }
  if (!existing && existing.error().code() != ErrorCode::kNotFound &&
      existing.error().code() != ErrorCode::kCorrupt &&
      existing.error().code() != ErrorCode::kUnsupported)
    return std::unexpected(existing.error());

  // The config.
  DS_RETURN_IF_ERROR(with_context(
      count_upload(client.push_blob(repository, info.config_bytes), info.config_bytes.size(), out),
      "image config"));

  std::string manifest_body, manifest_type;
  const DistributionIdentity* dist = info.distribution ? &*info.distribution : nullptr;
  if (dist && dist->layers.size() == info.layers.size()) {
    // The build host's own manifest and blobs, byte for byte.
    for (const auto& doc : dist->documents) {
      if (Digest::of(doc) == dist->manifest_digest) manifest_body = doc;
    }
  }
  if (!manifest_body.empty()) {
    Json m = Json::parse(manifest_body, nullptr, false);
    manifest_type =
        m.is_object() ? m.value("mediaType", media_type::kOciManifest) : media_type::kOciManifest;
    for (size_t i = 0; i < info.layers.size(); ++i) {
      const BlobDescriptor& blob = dist->layers[i].blob;
      DS_ASSIGN_OR_RETURN(auto has, client.blob_size(repository, blob.digest));
      if (has) continue;
      DS_ASSIGN_OR_RETURN(auto source, image.open_blob(i));
      DS_RETURN_IF_ERROR(
          with_context(count_upload(client.push_blob(repository, blob.digest, blob.size, *source),
                                    blob.size, out),
                       "layer " + std::to_string(i + 1) + " (" + blob.digest.short_str() + ")"));
    }
  } else {
    Json layers = Json::array();
    for (size_t i = 0; i < info.layers.size(); ++i) {
      DS_ASSIGN_OR_RETURN(Blob blob,
                          push_compressed_layer(client, repository, image, i, scratch_dir, out));
      layers.push_back(
          {{"mediaType", blob.media_type}, {"size", blob.size}, {"digest", blob.digest.str()}});
    }
    Json m = {{"schemaVersion", 2},
              {"mediaType", media_type::kDockerManifest},
              {"config",
               {{"mediaType", media_type::kDockerConfig},
                {"size", info.config_bytes.size()},
                {"digest", info.image_id.str()}}},
              {"layers", layers}};
    manifest_body = m.dump(3);
    manifest_type = media_type::kDockerManifest;
  }
  Digest manifest_digest = Digest::of(manifest_body);
  DS_ASSIGN_OR_RETURN(Digest stored, client.put_manifest(repository, manifest_digest.str(),
                                                         manifest_type, manifest_body));
  if (stored != manifest_digest)
    return make_error(ErrorCode::kProtocol, "the registry stored manifest " +
                                                manifest_digest.str() + " as " + stored.str());
  DS_RETURN_IF_ERROR(client.put_manifest(repository, tag, manifest_type, manifest_body));
  out.manifest.media_type = manifest_type;
  out.manifest.digest = manifest_digest;
  out.manifest.size = manifest_body.size();
  spdlog::info("pushed {}:{} ({}; {} blobs, {} bytes uploaded)", repository, tag,
               manifest_digest.str(), out.blobs_uploaded, out.bytes_uploaded);
  return out;
}

}  // namespace deltasync
