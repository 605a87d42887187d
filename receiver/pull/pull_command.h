// Pull mode: a site that can only reach out (NAT, carrier-grade NAT) keeps
// an image current from a registry. `deltarecvd pull REG/REPO:TAG` does one
// round; the service does a round per `watch = REG/REPO:TAG` every poll
// interval (watch_loop.h). A round:
//   1. HEAD the tag; if it names what this site last loaded for it and the
//      engine still holds that image, stop (one request per poll);
//   2. resolve the tag to this platform's manifest and config (verified);
//      if the engine already holds the config, tag it and stop;
//   3. find the deltas published for that manifest (delta_discovery.h) and
//      pick the smallest whose base the engine holds;
//   4. fetch its parts into the store (resumable, each verified), assemble
//      the bundle, verify its checksum and signature, rebuild, verify and
//      load it exactly as `deltarecvd apply` does;
//   5. no delta fits, or the delta fails: a plain pull of the missing
//      layers (full_pull.h). Never a half-loaded image: each path loads
//      only after everything verified.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/registry/registry_client.h"
#include "common/store/layer_store.h"
#include "common/util/result.h"

namespace deltasync {

struct PullOptions {
  std::string reference;  // REG/REPO[:TAG]
  RegistryOptions registry;
  std::string engine;
  std::filesystem::path store_dir;  // pull state and parts go in STORE/pulls
  // The site's layer store (borrowed; may be null): deltas are decoded
  // against its basis layers (no engine export when it holds them) and what
  // they rebuild is kept there (ApplyCommandOptions::store).
  LayerStore* store = nullptr;
  std::string platform;  // "" = this host's
  // Who may have signed deltas (as for apply).
  std::string ca;
  std::vector<std::string> allowed_names;
  std::vector<std::string> trusted_keys;
  bool allow_unsigned = false;
  bool allow_full_pull = true;  // false: fail when no delta fits
  int attempts = 3;             // tries per blob after cuts (each resumes)
  bool json = false;
  bool quiet = false;
};

struct PullReport {
  std::string reference;
  std::string manifest_digest;  // the target's per-platform manifest
  std::string config_digest;
  // "up to date", "delta", "full pull"
  std::string outcome;
  std::string engine_id;
  std::string delta_from;       // the base config digest the delta was made against
  std::string delta_found_by;   // "referrers API", "referrers tag", "delta tag"
  std::string fallback_reason;  // why a full pull, when it was one
  uint64_t delta_bytes = 0;     // the bundle's size
  uint64_t bytes_fetched = 0;   // blob bytes received this round
  uint64_t bytes_reused = 0;    // blob bytes already on disk from an earlier cut round
  uint64_t registry_requests = 0;
  size_t resumes = 0;  // blob fetches resumed after a cut within this round
  double seconds = 0;
  // Wall seconds of each step taken, in order: "poll" (the tag's HEAD),
  // "resolve" (manifests, config, the engine's images), "discover",
  // "fetch", "assemble" (parts into the bundle), then the apply's "verify",
  // "basis", "rebuild", "load", "store"; or "full pull".
  std::vector<std::pair<std::string, double>> phases;
  std::string describe() const;  // one line for the log
};

Result<PullReport> pull_once(const PullOptions& options);

// The command: pull_once, then print the report (or JSON).
Status run_pull_command(const PullOptions& options);

}  // namespace deltasync
