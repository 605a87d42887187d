// `deltasend IMAGE --to HOST[:PORT] [--to HOST2 ...]`: ships an image to one
// or more deltarecvd sites over TLS and succeeds for a site only when that
// site has loaded and verified it. `--dry-run` asks each site what it has
// and reports what a real run would send, without sending layer data.
//
// Thread safety: run_send_command sends to up to `parallel` sites at once,
// each on its own thread with its own connection; they share one SendSource
// (sender/net/send_source.h) and report to one ProgressBoard.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/net/tls_options.h"
#include "common/util/result.h"
#include "sender/net/send_progress.h"

namespace deltasync {

struct SendCommandOptions {
  std::string image;
  std::vector<std::string> sites;  // HOST[:PORT], one or more
  size_t parallel = 4;             // sites sent to at once
  std::string engine;
  TlsIdentity identity;
  std::string effort = "default";
  int threads = 2;
  bool use_local_basis = true;  // false: always use the site's signatures
  uint64_t segment_bytes = 8ull << 20;
  std::string cache_dir;  // basis indexes received from sites, TLS tickets, the layer cache
  // The layer cache's budget (CACHE/layers, sender/cache/); 0: no layer
  // cache (--no-cache or --cache-budget 0).
  uint64_t layer_cache_budget = 20ull << 30;
  bool dry_run = false;
  // Fail before sending unless a containerd-store site can end with the
  // build host's own Id (--require-same-id).
  bool require_same_id = false;
  std::string platform;  // --platform: os/arch[/variant]; empty: this host's
  std::chrono::milliseconds io_timeout{120000};
};

// What one layer of the image costs (a dry run's report; also filled by a
// real run for the layers it sends).
struct LayerReport {
  uint32_t position = 0;  // 0-based, in the image
  std::string diff_id;
  uint64_t layer_bytes = 0;
  // "engine": the site's engine holds it; "store": the site's store does;
  // "send": it is coded and sent; "resume": sent from a checkpoint.
  std::string disposition;
  uint64_t reused_bytes = 0;        // file bytes the site already holds (no data sent)
  uint64_t delta_source_bytes = 0;  // file bytes coded as deltas...
  uint64_t delta_bytes = 0;         // ...into this many delta bytes
  uint64_t literal_bytes = 0;       // file bytes sent whole (compressed)
  uint64_t stream_bytes = 0;        // the layer stream, compressed
};

struct SendSummary {
  std::string site;
  std::string image_id;          // the config digest: the content identity, always verified
  std::string source_engine_id;  // the build engine's ID when it differs (containerd store)
  std::string site_engine_id;    // the site engine's ID when it differs (its manifest digest)
  std::string site_image_store;  // "containerd image store (native)", ...
  std::string build_host_id;     // the Id on the build host (SourceIdentity::image_id)
  std::string identity_note;     // from the site: why it did not keep the build host's Id
  // The site's engine's Id equals build_host_id.
  bool same_id_as_build_host() const {
    return (site_engine_id.empty() ? image_id : site_engine_id) == build_host_id;
  }
  bool dry_run = false;
  bool already_loaded = false;
  bool tls_session_resumed = false;  // the handshake resumed an earlier session (no certificates)
  std::string basis;  // the image the site chose as basis (its reference or ID); "" for none
  std::string mode;   // "local", "remote" or "none"
  // LOCAL: where this machine found the basis: "engine" or "cache" (the
  // layer cache); "" otherwise.
  std::string basis_source;
  uint64_t socket_bytes_sent = 0;
  uint64_t socket_bytes_received = 0;
  uint64_t missing_layer_bytes = 0;  // uncompressed bytes of the layers the site lacked
  uint64_t pull_estimate_bytes = 0;  // gzip of those layers (what a registry moves)
  uint64_t layers_sent = 0;
  uint64_t layers_resumed = 0;
  uint64_t stream_bytes = 0;
  uint64_t index_bytes = 0;       // REMOTE: basis index bytes the site sent (its counters)
  uint64_t signature_bytes = 0;   // REMOTE: librsync signature bytes the site sent
  uint32_t signature_rounds = 0;  // REMOTE: most signature rounds any layer needed
  uint64_t site_socket_bytes_received = 0;  // the site's own counters, at its result
  uint64_t site_socket_bytes_sent = 0;
  bool shared_encoding = false;  // the streams were coded once for several sites
  // Dry run: the bytes a real run would move at the socket, both ways.
  uint64_t estimated_wire_bytes = 0;
  std::vector<LayerReport> layers;
  double seconds = 0;
};

struct SiteOutcome {
  std::string site;
  Result<SendSummary> summary;
};

// Sends (or dry-runs) to every site of `options`; one outcome per site, in
// the order given. Never throws.
std::vector<SiteOutcome> run_send_command(const SendCommandOptions& options, ProgressBoard& board);

// "edge-host", "edge-host:7443", "[::1]:7443" -> host and port.
Result<std::pair<std::string, uint16_t>> parse_host_port(const std::string& text,
                                                         uint16_t default_port);

// Reads a file of sites: one HOST[:PORT] per line; blank lines and '#'
// comments are ignored.
Result<std::vector<std::string>> read_sites_file(const std::string& path);

}  // namespace deltasync
