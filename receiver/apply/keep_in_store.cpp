// See keep_in_store.h.
#include "receiver/apply/keep_in_store.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

namespace deltasync {

void keep_in_store(LayerStore& store, LayerWorkspace& workspace, const std::vector<Digest>& layers,
                   const std::string& config, const std::string& engine_id) {
  Digest config_digest = Digest::of(config);
  Status kept = store.write_config(config_digest, config);
  if (kept) kept = store.link_engine_image(engine_id, config_digest);
  for (const auto& diff_id : layers) {
    if (!kept) break;
    if (store.has(diff_id) || !workspace.has(diff_id)) continue;
    if (::fsync(workspace.fd(diff_id)) != 0) {
      kept = std::unexpected(errno_error(errno, "sync " + workspace.path_of(diff_id).string()));
      break;
    }
    kept = store.adopt_rebuilt(diff_id, workspace.path_of(diff_id));
  }
  if (kept) kept = store.enforce_budget();
  if (!kept) spdlog::warn("the store keeps no copy of this image: {}", kept.error().message());
}

}  // namespace deltasync
