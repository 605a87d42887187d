// `deltasend status --to HOST`: what a site holds (images and tags, store
// use, recent transfers) and whether its engine answers.
#pragma once

#include <string>

#include "common/net/tls_options.h"
#include "common/util/result.h"

namespace deltasync {

struct StatusCommandOptions {
  std::string to;
  TlsIdentity identity;
  bool json = false;
};

Status run_status_command(const StatusCommandOptions& options);

}  // namespace deltasync
