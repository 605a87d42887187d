// `deltasend IMAGE --to HOST[:PORT]`: ships an image to a deltarecvd over
// TLS and returns only when the site has loaded and verified it.
#pragma once

#include <string>
#include <vector>

#include "common/net/tls_options.h"
#include "common/util/result.h"

namespace deltasync {

struct SendCommandOptions {
  std::string image;
  std::string to;  // HOST[:PORT]
  std::string engine;
  TlsIdentity identity;
  std::string effort = "default";
  int threads = 2;
  bool use_local_basis = true;  // false: always use the site's signatures
  uint64_t segment_bytes = 8ull << 20;
  std::string cache_dir;  // basis indexes received from sites
  bool json = false;
  bool quiet = false;
  std::chrono::milliseconds io_timeout{120000};
};

struct SendSummary {
  std::string image_id;
  bool already_loaded = false;
  std::string mode;  // "local", "remote" or "none"
  uint64_t socket_bytes_sent = 0;
  uint64_t socket_bytes_received = 0;
  uint64_t missing_layer_bytes = 0;  // uncompressed bytes of the layers the site lacked
  uint64_t pull_estimate_bytes = 0;  // gzip of those layers (what a registry moves)
  uint64_t layers_sent = 0;
  uint64_t layers_resumed = 0;
  uint64_t stream_bytes = 0;
  uint64_t index_bytes = 0;      // REMOTE: basis index bytes the site sent (its counters)
  uint64_t signature_bytes = 0;  // REMOTE: librsync signature bytes the site sent
  double seconds = 0;
};

Result<SendSummary> run_send_command(const SendCommandOptions& options);

// "edge-host", "edge-host:7443", "[::1]:7443" -> host and port.
Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text,
                                                         uint16_t default_port);

}  // namespace deltasync
