// Steps (publish_command.h):
//   1. open IMAGE and push it unless the registry's tag already names it
//      (image_push.h): its per-platform manifest is every delta's subject;
//   2. per base: write the bundle to a scratch file with `deltasend
//      bundle`'s code (signed the same way), cut it into parts, upload the
//      parts the registry lacks, then the delta's config and manifest (by
//      digest), its deterministic tag, and the referrers tag schema's index
//      (when the registry has no referrers API; referrers_tag_update.h:
//      foreign or stale entries dropped, a lost race merged again);
//   3. report what was pushed, per base.
// Nothing a receiver could see points at a delta before all its blobs are
// in the registry: the manifest goes after its blobs, the tags after it.
#include "sender/publish/publish_command.h"

#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/bundle/bundle_file.h"
#include "common/io/file.h"
#include "common/registry/delta_artifact.h"
#include "common/util/human_units.h"
#include "sender/commands/bundle_command.h"
#include "sender/commands/open_images.h"
#include "sender/publish/image_push.h"
#include "sender/publish/referrers_tag_update.h"

namespace deltasync {

namespace {

using Json = nlohmann::json;

struct PublishedDelta {
  std::string base;
  Digest base_config;
  Digest manifest_digest;
  std::string tag;
  uint64_t bundle_bytes = 0;
  size_t parts = 0;
  std::vector<std::string> part_digests;
  uint64_t bytes_uploaded = 0;
  double encode_seconds = 0;
  int index_rounds = 0;                    // referrers tag rounds (0: the registry has the API)
  std::vector<std::string> index_dropped;  // entries removed from it as not belonging
};

Result<Digest> hash_range(int fd, uint64_t offset, uint64_t length, const std::string& name) {
  FileSource source(fd, offset, length, name);
  HashingSink hashed;
  DS_RETURN_IF_ERROR(copy_exact(source, hashed, length, name));
  return hashed.digest();
}

Result<PublishedDelta> publish_delta(RegistryClient& client, const std::string& repository,
                                     const PublishCommandOptions& options, const std::string& base,
                                     const ImageInfo& target, const RegistryDescriptor& subject,
                                     const std::filesystem::path& scratch) {
  auto started = std::chrono::steady_clock::now();
  PublishedDelta out;
  out.base = base;
  auto bundle_path = scratch / "delta.dsb";
  BundleCommandOptions bundle;
  bundle.image = options.image;
  bundle.base = base;
  bundle.output = bundle_path.string();
  bundle.engine = options.engine;
  bundle.effort = options.effort;
  bundle.threads = options.threads;
  bundle.platform = options.platform;
  bundle.signing_key = options.signing_key;
  bundle.cert = options.cert;
  bundle.key = options.key;
  bundle.unsigned_bundle = options.unsigned_bundle;
  bundle.quiet = true;
  DS_RETURN_IF_ERROR(with_context(run_bundle_command(bundle), "delta from " + base));
  out.encode_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  DS_ASSIGN_OR_RETURN(auto reader, BundleReader::open(bundle_path));
  DS_RETURN_IF_ERROR(reader->verify());
  const wire::BundleHeader& header = reader->header();
  DeltaArtifactConfig config;
  config.bundle_format = reader->format_version();
  config.target.reference = options.image;
  config.target.manifest_digest = subject.digest;
  config.base.reference = base;
  DS_ASSIGN_OR_RETURN(config.base.config_digest, Digest::parse(header.basis().image_id()));
  for (const auto& id : header.basis().diff_ids()) {
    DS_ASSIGN_OR_RETURN(Digest d, Digest::parse(id));
    config.base.diff_ids.push_back(d);
  }
  config.part_size = options.part_size ? options.part_size : kDefaultPartBytes;

  DS_ASSIGN_OR_RETURN(UniqueFd fd, open_for_read(bundle_path));
  DS_ASSIGN_OR_RETURN(config.bundle_size, file_size(fd.get(), bundle_path));
  DS_ASSIGN_OR_RETURN(config.bundle_digest,
                      hash_range(fd.get(), 0, config.bundle_size, bundle_path.string()));
  DeltaArtifactManifest manifest;
  for (uint64_t offset = 0; offset < config.bundle_size; offset += config.part_size) {
    uint64_t length = std::min(config.part_size, config.bundle_size - offset);
    std::string name = "bundle part " + std::to_string(manifest.parts.size() + 1);
    DS_ASSIGN_OR_RETURN(Digest digest, hash_range(fd.get(), offset, length, name));
    FileSource part(fd.get(), offset, length, name);
    DS_ASSIGN_OR_RETURN(bool uploaded,
                        with_context(client.push_blob(repository, digest, length, part), name));
    if (uploaded) out.bytes_uploaded += length;
    RegistryDescriptor d;
    d.media_type = kBundlePartMediaType;
    d.digest = digest;
    d.size = length;
    manifest.parts.push_back(std::move(d));
  }
  out.parts = manifest.parts.size();
  for (const auto& part : manifest.parts) out.part_digests.push_back(part.digest.str());
  out.bundle_bytes = config.bundle_size;
  out.base_config = config.base.config_digest;

  config.target.config_digest = target.image_id;
  config.target.diff_ids = target.diff_ids();
  std::string config_json = config.to_json();
  DS_ASSIGN_OR_RETURN(bool config_uploaded, client.push_blob(repository, config_json));
  if (config_uploaded) out.bytes_uploaded += config_json.size();
  manifest.config.media_type = kDeltaConfigMediaType;
  manifest.config.digest = Digest::of(config_json);
  manifest.config.size = config_json.size();
  manifest.subject = subject;
  manifest.annotations = {{kAnnotationBaseConfig, config.base.config_digest.str()},
                          {kAnnotationTargetConfig, config.target.config_digest.str()},
                          {kAnnotationBundleSize, std::to_string(config.bundle_size)}};
  std::string body = manifest.to_json();
  out.manifest_digest = Digest::of(body);
  DS_RETURN_IF_ERROR(
      client.put_manifest(repository, out.manifest_digest.str(), media_type::kOciManifest, body));
  out.bytes_uploaded += body.size();
  out.tag = delta_tag(subject.digest, config.base.config_digest);
  DS_RETURN_IF_ERROR(client.put_manifest(repository, out.tag, media_type::kOciManifest, body));

  RegistryDescriptor entry;
  entry.media_type = media_type::kOciManifest;
  entry.digest = out.manifest_digest;
  entry.size = body.size();
  entry.artifact_type = kDeltaArtifactType;
  entry.annotations = manifest.annotations;
  DS_ASSIGN_OR_RETURN(auto api, client.referrers(repository, subject.digest, kDeltaArtifactType));
  if (!api) {
    DS_ASSIGN_OR_RETURN(ReferrersTagUpdate update,
                        update_referrers_tag(client, repository, subject.digest, entry));
    out.index_rounds = update.rounds;
    out.index_dropped = std::move(update.dropped);
  }
  std::error_code ec;
  std::filesystem::remove(bundle_path, ec);
  return out;
}

std::string default_tag(const std::string& image) {
  // app:2.0.0 -> 2.0.0; registry.example:5000/app -> latest; an ID -> latest.
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash) ||
      image.rfind("sha256:", 0) == 0 || image.find("archive:") != std::string::npos ||
      image.rfind("oci:", 0) == 0)
    return "latest";
  return image.substr(colon + 1);
}

}  // namespace

Status run_publish_command(const PublishCommandOptions& options) {
  auto started = std::chrono::steady_clock::now();
  DS_ASSIGN_OR_RETURN(RegistryReference where, RegistryReference::parse(options.registry));
  if (!where.digest.empty())
    return make_error(ErrorCode::kInvalidArgument,
                      "--registry " + options.registry + ": give REG/REPO[:TAG], not a digest");
  if (where.tag.empty()) where.tag = default_tag(options.image);
  if (options.bases.empty())
    spdlog::warn("publish: no --base given; only the image itself is pushed (sites pull it whole)");
  DS_ASSIGN_OR_RETURN(auto client,
                      RegistryClient::create(where.registry, options.registry_options));
  DS_RETURN_IF_ERROR(client->ping());
  DS_ASSIGN_OR_RETURN(TempDir scratch,
                      TempDir::create(default_temp_parent(), "deltasend-publish-"));

  PushedImage pushed;
  ImageInfo target;
  {
    ImageOpener opener(options.engine, options.platform);
    DS_ASSIGN_OR_RETURN(auto image, opener.open(options.image));
    target = image->info();
    DS_ASSIGN_OR_RETURN(pushed, with_context(push_image(*client, where.repository, where.tag,
                                                        *image, scratch.path()),
                                             "pushing " + options.image + " to " + where.str()));
  }
  std::vector<PublishedDelta> deltas;
  for (const auto& base : options.bases) {
    DS_ASSIGN_OR_RETURN(auto delta, publish_delta(*client, where.repository, options, base, target,
                                                  pushed.manifest, scratch.path()));
    spdlog::info("published the delta from {} as {}:{} ({} bytes in {} parts)", base,
                 where.repository, delta.tag, delta.bundle_bytes, delta.parts);
    deltas.push_back(std::move(delta));
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (options.json) {
    Json list = Json::array();
    for (const auto& d : deltas)
      list.push_back({{"base", d.base},
                      {"base_config", d.base_config.str()},
                      {"manifest_digest", d.manifest_digest.str()},
                      {"tag", d.tag},
                      {"bundle_bytes", d.bundle_bytes},
                      {"parts", d.parts},
                      {"part_digests", d.part_digests},
                      {"bytes_uploaded", d.bytes_uploaded},
                      {"encode_seconds", d.encode_seconds},
                      {"referrers_tag_rounds", d.index_rounds},
                      {"referrers_tag_dropped", d.index_dropped}});
    Json out = {{"registry", where.registry},
                {"repository", where.repository},
                {"tag", where.tag},
                {"manifest_digest", pushed.manifest.digest.str()},
                {"image_already_there", pushed.already_there},
                {"image_bytes_uploaded", pushed.bytes_uploaded},
                {"deltas", list},
                {"registry_bytes_sent", client->traffic().bytes_sent},
                {"seconds", seconds}};
    std::printf("%s\n", out.dump(2).c_str());
  } else if (!options.quiet) {
    std::printf("%s: %s (%s)\n", where.str().c_str(), pushed.manifest.digest.str().c_str(),
                pushed.already_there
                    ? "already there"
                    : ("pushed, " + human_bytes(pushed.bytes_uploaded) + " of blobs").c_str());
    for (const auto& d : deltas)
      std::printf("  delta from %s: %s in %zu part%s, tag %s\n", d.base.c_str(),
                  human_bytes(d.bundle_bytes).c_str(), d.parts, d.parts == 1 ? "" : "s",
                  d.tag.c_str());
    std::printf("  %s sent to the registry in %.1fs\n",
                human_bytes(client->traffic().bytes_sent).c_str(), seconds);
  }
  return ok_status();
}

}  // namespace deltasync
