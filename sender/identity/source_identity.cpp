#include "sender/identity/source_identity.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "common/protocol/distribution_codec.h"
#include "common/util/human_units.h"

namespace deltasync {

std::string SourceIdentity::summary() const {
  if (!distribution)
    return "Id " + image_id +
           " (the config digest; no manifest here, so a containerd-store site "
           "keeps the content identity under the Id of the manifest it writes)";
  if (image_id != distribution->target.digest.str())
    return "Id " + image_id + " (this engine's; the image's manifest is " +
           distribution->describe() + ")";
  if (reproducible())
    return "Id " + image_id + " (" +
           (distribution->target.digest == distribution->manifest_digest
                ? std::string("a manifest")
                : std::string("an index")) +
           (distribution->platform.empty() ? "" : ", " + distribution->platform) +
           "); every blob rebuildable, so a containerd-store site ends with the same Id";
  std::string layers;
  for (size_t n : distribution->unreproducible_layers())
    layers += (layers.empty() ? "" : ", ") + std::to_string(n);
  return "Id " + image_id + " (" + distribution->describe() + "); the blobs of layer(s) " + layers +
         " (" + human_bytes(distribution->unreproducible_bytes()) +
         ") are not reproduced by any Go gzip here, so a containerd-store site keeps the content "
         "identity under another Id";
}

std::filesystem::path sender_cache_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::filesystem::path(xdg) / "deltasync";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "deltasync";
  return "/var/tmp/deltasync-cache";
}

Result<SourceIdentity> prepare_source_identity(ImageReader& reader, bool require_same_id,
                                               const std::filesystem::path& cache_dir) {
  SourceIdentity out;
  const ImageInfo& info = reader.info();
  out.image_id = info.image_id.str();
  if (info.distribution) {
    out.distribution = info.distribution;
    out.image_id = info.engine_id.empty() ? out.distribution->target.digest.str() : info.engine_id;
    const GoGzip& gzip = GoGzip::installed();
    DS_ASSIGN_OR_RETURN(out.search,
                        find_blob_recipes(reader, *out.distribution, gzip,
                                          cache_dir.empty() ? cache_dir : cache_dir / "recipes"));
    spdlog::info(
        "distribution identity {}: {} of {} compressed layers reproduced by Go gzip ({}; {} "
        "proved before; {} compressed in {:.2f}s)",
        out.distribution->describe(), out.search.layers_reproduced, out.search.layers_tried,
        gzip.describe(), out.search.layers_from_cache, human_bytes(out.search.plain_bytes),
        out.search.seconds);
    out.encoded = encode_distribution(*out.distribution);
  }
  if (require_same_id && !out.reproducible()) {
    return make_error(ErrorCode::kUnsupported,
                      "--require-same-id: " + out.summary() +
                          "; shipping those blobs whole would cost their size on the wire; "
                          "build with BuildKit's default gzip, or install the deltasync-gzip "
                          "helper of the Go release that wrote them (docs/engines.md)");
  }
  return out;
}

}  // namespace deltasync
