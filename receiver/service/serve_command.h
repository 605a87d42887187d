// `deltarecvd` without a subcommand: the long-running service. Opens the
// store, binds the TLS listener, tells systemd it is ready (Type=notify) and
// serves sessions (and the pull-mode rounds) until SIGTERM/SIGINT, which stops accepting, cancels
// the sessions' pending I/O (their checkpoints are on disk) and exits 0.
#pragma once

#include <string>
#include <vector>

#include "common/net/tls_options.h"
#include "common/util/result.h"
#include "receiver/pull/watch_loop.h"

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
  // Pull mode (receiver/pull/): references to keep current from their
  // registry, every poll interval. With watches and no certificate, the
  // service runs in pull mode alone (no listener).
  std::vector<std::string> watch;
  int poll_interval_seconds = 300;
  PullOptions pull;  // registry access and signature trust for the rounds
  // The background indexer (engine_indexer.h): the engine's images brought
  // into the store at start-up and on its image events, within
  // index_share_percent of the store's budget.
  bool index_engine = true;
  unsigned index_share_percent = 50;
  int index_poll_interval_seconds = 30;  // engines without image events
  bool listener() const { return !identity.certificate.empty(); }
};

Status run_serve_command(const ServeOptions& options);

}  // namespace deltasync
