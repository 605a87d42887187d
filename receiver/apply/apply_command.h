// `deltarecvd apply BUNDLE`: rebuilds an image from an offline bundle and
// loads it into the site's engine.
#pragma once

#include <string>

#include "common/util/result.h"

namespace deltasync {

struct ApplyCommandOptions {
  std::string bundle;
  std::string engine;
  bool json = false;
  bool quiet = false;
};

Status run_apply_command(const ApplyCommandOptions& options);

}  // namespace deltasync
