// See delta_discovery.h. The referrers API, else the tag schema's index,
// lists the deltas (publish keeps the index on registries without the API);
// when none of them starts from an image held, the per-basis tags of those
// images find deltas whose index update was lost or that were pushed by hand.
#include "receiver/pull/delta_discovery.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

namespace deltasync {

namespace {

constexpr size_t kDocumentLimit = 4 << 20;

Result<DeltaOffer> read_offer(RegistryClient& client, const std::string& repository,
                              const Digest& manifest_digest, const Digest& subject,
                              std::string found_by) {
  DS_ASSIGN_OR_RETURN(auto fetched, client.get_manifest(repository, manifest_digest.str()));
  if (!fetched)
    return make_error(ErrorCode::kNotFound,
                      "delta " + manifest_digest.str() + " is listed but absent");
  DeltaOffer offer;
  offer.manifest_digest = manifest_digest;
  offer.found_by = std::move(found_by);
  DS_ASSIGN_OR_RETURN(offer.manifest, DeltaArtifactManifest::parse(fetched->body));
  if (offer.manifest.subject.digest != subject)
    return make_error(ErrorCode::kCorrupt, "delta " + manifest_digest.str() + " is for " +
                                               offer.manifest.subject.digest.str());
  DS_ASSIGN_OR_RETURN(std::string config,
                      client.get_blob(repository, offer.manifest.config.digest, kDocumentLimit));
  DS_ASSIGN_OR_RETURN(offer.config, DeltaArtifactConfig::parse(config));
  uint64_t parts_total = 0;
  for (const auto& part : offer.manifest.parts) parts_total += part.size;
  if (parts_total != offer.config.bundle_size)
    return make_error(ErrorCode::kCorrupt, "delta " + manifest_digest.str() + ": its parts hold " +
                                               std::to_string(parts_total) + " bytes, its bundle " +
                                               std::to_string(offer.config.bundle_size));
  return offer;
}

}  // namespace

Result<std::vector<DeltaOffer>> discover_deltas(RegistryClient& client,
                                                const std::string& repository,
                                                const Digest& subject,
                                                const std::vector<Digest>& local_configs) {
  std::vector<std::pair<Digest, std::string>> listed;
  std::set<std::string> bases_listed;  // io.deltasync.base.config of what the lists name
  auto note = [&](const RegistryDescriptor& d, const char* how) {
    if (d.artifact_type != kDeltaArtifactType) return;
    listed.emplace_back(d.digest, how);
    if (auto it = d.annotations.find(kAnnotationBaseConfig); it != d.annotations.end())
      bases_listed.insert(it->second);
  };
  DS_ASSIGN_OR_RETURN(auto api, client.referrers(repository, subject, kDeltaArtifactType));
  if (api) {
    for (const auto& d : *api) note(d, "referrers API");
  } else {
    DS_ASSIGN_OR_RETURN(auto index, client.get_manifest(repository, referrers_tag(subject)));
    if (index) {
      auto entries = parse_index_descriptors(index->body);
      if (!entries) {
        spdlog::warn("{}:{}: {}", repository, referrers_tag(subject), entries.error().message());
      } else {
        for (const auto& d : *entries) note(d, "referrers tag");
      }
    }
  }
  // When no listed delta starts from an image held, the per-basis tags of
  // those images: a delta whose index update was lost is still found, and a
  // site that has a listed basis pays no probes.
  bool basis_listed = std::any_of(local_configs.begin(), local_configs.end(),
                                  [&](const Digest& c) { return bases_listed.count(c.str()) > 0; });
  if (!basis_listed) {
    size_t probes = 0;
    for (const auto& config : local_configs) {
      if (bases_listed.count(config.str())) continue;
      if (++probes > kMaxTagProbes) break;
      DS_ASSIGN_OR_RETURN(auto head, client.head_manifest(repository, delta_tag(subject, config)));
      if (head) listed.emplace_back(head->digest, "delta tag");
    }
  }
  std::vector<DeltaOffer> offers;
  std::set<Digest> seen;
  for (const auto& [digest, how] : listed) {
    if (!seen.insert(digest).second) continue;
    auto offer = read_offer(client, repository, digest, subject, how);
    if (!offer) {
      if (offer.error().code() == ErrorCode::kUnavailable ||
          offer.error().code() == ErrorCode::kTimeout)
        return std::unexpected(offer.error());
      spdlog::warn("skipping delta {}: {}", digest.short_str(), offer.error().message());
      continue;
    }
    offers.push_back(std::move(*offer));
  }
  return offers;
}

}  // namespace deltasync
