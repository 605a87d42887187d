#include "receiver/service/basis_choice.h"

#include <set>

#include "common/engine/image_match.h"

namespace deltasync {

std::string repository_of(const std::string& reference) {
  std::string ref = reference.substr(0, reference.find('@'));
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return ref.substr(0, colon);
  return ref;
}

Result<BasisChoice> choose_basis(EngineClient& engine, const std::vector<Digest>& target_chain,
                                 const std::string& target_image_id,
                                 const std::vector<std::string>& target_tags,
                                 const ConfigDigestOf& config_digest_of,
                                 bool every_layer_in_archive) {
  BasisChoice choice;
  DS_ASSIGN_OR_RETURN(auto images, engine.list_images());
  std::set<std::string> repositories;
  for (const auto& tag : target_tags) repositories.insert(repository_of(tag));

  // Score: same repository, then shared leading layers, then the newest.
  struct Best {
    int same_repo = -1;
    size_t shared = 0;
    int64_t created = 0;
  } best;
  for (const auto& summary : images) {
    std::optional<std::string> config_digest = config_digest_of(summary.id);
    if (config_digest && *config_digest == target_image_id) {
      choice.has_image = true;
      choice.target_engine_id = summary.id;
      continue;
    }
    auto detail = engine.inspect_image(summary.id);
    if (!detail) continue;  // removed meanwhile
    std::vector<Digest> chain;
    bool valid = true;
    for (const auto& text : detail->diff_ids) {
      auto d = Digest::parse(text);
      if (!d) {
        valid = false;
        break;
      }
      chain.push_back(*d);
    }
    if (!valid || chain.empty()) continue;
    size_t shared = common_prefix(target_chain, chain);
    if (!every_layer_in_archive) choice.engine_layers = std::max(choice.engine_layers, shared);
    int same_repo = 0;
    std::string reference;
    for (const auto& tag : summary.repo_tags) {
      if (tag == "<none>:<none>") continue;
      if (reference.empty()) reference = tag;
      if (repositories.count(repository_of(tag))) {
        same_repo = 1;
        reference = tag;
      }
    }
    if (same_repo == 0 && shared == 0) continue;  // nothing in common we can tell
    bool better =
        same_repo > best.same_repo ||
        (same_repo == best.same_repo &&
         (shared > best.shared || (shared == best.shared && summary.created > best.created)));
    if (better) {
      best = Best{same_repo, shared, summary.created};
      choice.engine_id = summary.id;
      choice.image_id = config_digest.value_or("");
      choice.reference = reference;
      choice.chain = std::move(chain);
    }
  }
  if (every_layer_in_archive && !choice.engine_id.empty())
    choice.engine_layers = common_prefix(target_chain, choice.chain);
  return choice;
}

}  // namespace deltasync
