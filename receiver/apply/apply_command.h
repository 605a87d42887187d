// `deltarecvd apply BUNDLE`: rebuilds an image from an offline bundle and
// loads it into the site's engine.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/store/layer_store.h"
#include "common/util/result.h"

namespace deltasync {

// What an apply did, for callers that report it themselves (pull mode).
struct ApplyOutcome {
  std::string config_digest;  // the image verified
  std::string engine_id;      // the engine's Id of it
  std::string signed_by;      // "" when unsigned and allowed
  uint64_t rebuilt_bytes = 0;
  size_t layers_rebuilt = 0;
  size_t layers_reused = 0;
  bool same_as_source = false;
  // Wall seconds of each step, in order: "verify" (checksum + signature),
  // "basis", "rebuild", "load", "store" (rebuilt layers kept as bases).
  std::vector<std::pair<std::string, double>> phases;
};

struct ApplyCommandOptions {
  std::string bundle;
  std::string engine;
  // Who may have made the bundle (common/crypto/signing.h): certificates
  // the CA vouches for, with a name in allowed_names when that is set (the
  // service's --ca and --allow-client), and ed25519 public keys.
  std::string ca;
  std::vector<std::string> allowed_names;
  std::vector<std::string> trusted_keys;
  // Apply a bundle that carries no signature (format 1, or --unsigned).
  bool allow_unsigned = false;
  // Names given to the image besides the bundle's own tags (pull mode: the
  // registry reference it was pulled as).
  std::vector<std::string> extra_tags;
  // Filled in on success when set (borrowed).
  ApplyOutcome* outcome = nullptr;
  // The site's store (borrowed; may be null): basis layers are read from it
  // instead of an engine export (and brought in once when missing), and the
  // rebuilt layers and config are kept in it as the basis of later updates.
  // Pull mode passes it; a plain `apply` works from a scratch copy.
  LayerStore* store = nullptr;
  bool json = false;
  bool quiet = false;
};

Status run_apply_command(const ApplyCommandOptions& options);

}  // namespace deltasync
