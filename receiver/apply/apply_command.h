// `deltarecvd apply BUNDLE`: rebuilds an image from an offline bundle and
// loads it into the site's engine.
#pragma once

#include <string>
#include <vector>

#include "common/util/result.h"

namespace deltasync {

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
  bool json = false;
  bool quiet = false;
};

Status run_apply_command(const ApplyCommandOptions& options);

}  // namespace deltasync
