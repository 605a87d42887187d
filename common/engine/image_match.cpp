#include "common/engine/image_match.h"

#include <algorithm>

namespace deltasync {

size_t common_prefix(const std::vector<Digest>& a, const std::vector<Digest>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

Result<BaseImageMatch> find_image_with_layers(EngineClient& engine,
                                              const std::vector<Digest>& chain,
                                              const std::string& base_hint,
                                              const std::string& preferred_id) {
  if (chain.empty()) return BaseImageMatch{};
  DS_ASSIGN_OR_RETURN(auto images, engine.list_images());
  if (!preferred_id.empty()) {
    // Try the preferred image first.
    std::stable_partition(images.begin(), images.end(),
                          [&](const EngineImageSummary& s) { return s.id == preferred_id; });
  }
  size_t best_prefix = 0;
  for (const auto& summary : images) {
    auto detail = engine.inspect_image(summary.id);
    if (!detail) continue;  // removed meanwhile
    std::vector<Digest> diff_ids;
    bool ok = true;
    for (const auto& d : detail->diff_ids) {
      auto parsed = Digest::parse(d);
      if (!parsed) {
        ok = false;
        break;
      }
      diff_ids.push_back(*parsed);
    }
    if (!ok) continue;
    size_t prefix = common_prefix(chain, diff_ids);
    if (prefix == chain.size()) return BaseImageMatch{detail->id, diff_ids};
    best_prefix = std::max(best_prefix, prefix);
  }
  std::string missing;
  for (size_t i = best_prefix; i < chain.size() && i < best_prefix + 5; ++i)
    missing.append(1, ' ').append(chain[i].str());
  if (chain.size() > best_prefix + 5) missing += " ...";
  return make_error(
      ErrorCode::kNotFound,
      "the engine at " + engine.address() +
          " holds no image with the base layers this needs: missing " +
          std::to_string(chain.size() - best_prefix) + " of " + std::to_string(chain.size()) +
          " layers:" + missing + " (load the base image" +
          (base_hint.empty() ? std::string() : " " + base_hint) + " on this site first)");
}

}  // namespace deltasync
