// `deltasend publish IMAGE --base B [--base B2 ...] --registry REG/REPO[:TAG]`:
// pushes IMAGE to the registry if it lacks it, then one delta per base as an
// OCI artifact whose subject is IMAGE's manifest (common/registry/
// delta_artifact.h), so pull-mode receivers behind NAT find and fetch it.
// One encode per base serves every site on that base.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/registry/registry_client.h"
#include "common/util/result.h"

namespace deltasync {

struct PublishCommandOptions {
  std::string image;
  std::vector<std::string> bases;
  std::string registry;  // REG/REPO[:TAG]; TAG defaults to IMAGE's tag
  RegistryOptions registry_options;
  std::string engine;
  std::string platform;
  std::string effort = "default";
  int threads = 2;
  uint64_t part_size = 0;  // 0: kDefaultPartBytes
  // Signing, as for bundles (bundle_command.h).
  std::string signing_key;
  std::string cert, key;
  bool unsigned_bundle = false;
  bool json = false;
  bool quiet = false;
};

Status run_publish_command(const PublishCommandOptions& options);

}  // namespace deltasync
