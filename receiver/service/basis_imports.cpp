// See basis_imports.h. The per-image lock is the service's ImageLocks (keyed
// here by the engine's ID, in a map of its own); holding it across the
// export is what makes a second caller wait instead of exporting again.
#include "receiver/service/basis_imports.h"

#include <chrono>

namespace deltasync {

std::optional<Digest> BasisImports::held(const LayerStore& store, const std::string& engine_id,
                                         const std::vector<Digest>& chain) {
  if (chain.empty()) return std::nullopt;
  for (const auto& d : chain)
    if (!store.has(d)) return std::nullopt;
  std::optional<Digest> config = store.config_of_engine_image(engine_id);
  if (!config) {
    auto id = Digest::parse(engine_id);
    if (!id) return std::nullopt;
    config = *id;
  }
  if (!store.read_config(*config)) return std::nullopt;
  return config;
}

Result<BasisImports::Outcome> BasisImports::ensure(LayerStore& store, EngineClient& engine,
                                                   const std::string& engine_id,
                                                   const std::vector<Digest>& chain, Who who,
                                                   const std::function<void()>& on_wait,
                                                   const std::function<void()>& on_export,
                                                   const std::atomic<bool>* cancel) {
  auto from_store = [&](const Digest& config_digest) -> Result<Outcome> {
    Outcome out;
    out.config_digest = config_digest;
    auto config = store.read_config(config_digest);
    if (!config)
      return make_error(ErrorCode::kNotFound,
                        "store: the config of " + engine_id + " went missing");
    out.config = std::move(*config);
    return out;
  };
  if (auto config = held(store, engine_id, chain)) return from_store(*config);
  bool waited = false;
  auto lock = locks_.lock(
      engine_id,
      [&] {
        if (!waited && on_wait) on_wait();
        waited = true;
      },
      std::chrono::milliseconds(200));
  if (cancel != nullptr && cancel->load())
    return make_error(ErrorCode::kCancelled, "stopped before importing " + engine_id);
  if (auto config = held(store, engine_id, chain)) return from_store(*config);
  if (on_export) on_export();
  (who == Who::kSession ? session_exports_ : indexer_exports_)++;
  DS_ASSIGN_OR_RETURN(EngineImageImport imported,
                      import_engine_image(store, engine, engine_id, chain, cancel));
  Outcome out;
  out.exported = true;
  out.config_digest = imported.config_digest;
  out.config = imported.config;
  out.import = std::move(imported);
  return out;
}

}  // namespace deltasync
