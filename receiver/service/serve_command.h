// `deltarecvd` without a subcommand: the long-running service. Opens the
// store, binds the TLS listener, tells systemd it is ready (Type=notify) and
// serves sessions until SIGTERM/SIGINT, which stops accepting, cancels the
// sessions' pending I/O (their checkpoints are on disk) and exits 0.
#pragma once

#include <string>
#include <vector>

#include "common/net/tls_options.h"
#include "common/util/result.h"

namespace deltasync {

struct ServeOptions {
  std::string listen = "0.0.0.0:7443";
  TlsIdentity identity;
  std::string store = "/var/lib/deltarecvd";
  std::string store_budget = "20G";
  std::string engine;
  std::vector<std::string> allowed_clients;
  size_t max_sessions = 4;
  int io_timeout_seconds = 300;
};

Status run_serve_command(const ServeOptions& options);

}  // namespace deltasync
