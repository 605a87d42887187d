// `deltasend bundle IMAGE --base BASE -o FILE`: writes an offline bundle
// that rebuilds IMAGE on a site holding BASE.
#pragma once

#include <string>

#include "common/util/result.h"

namespace deltasync {

struct BundleCommandOptions {
  std::string image;
  std::string base;  // empty: no basis (every layer travels, still coded)
  std::string output;
  std::string engine;
  std::string effort = "default";
  int threads = 2;
  // Fail unless a site on Docker's containerd store will end with this
  // image's own Id (every compressed blob rebuildable there).
  bool require_same_id = false;
  std::string platform;  // --platform: os/arch[/variant]; empty: this host's
  // Who signs the bundle (common/crypto/signing.h): an ed25519 key, else
  // the X.509 certificate and key (the sender's mTLS identity), else
  // nobody (unsigned: a site applies it only with --allow-unsigned).
  std::string signing_key;
  std::string cert, key;
  bool unsigned_bundle = false;
  bool json = false;
  bool quiet = false;
};

Status run_bundle_command(const BundleCommandOptions& options);

}  // namespace deltasync
