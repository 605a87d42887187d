// deltarecvd: the site-side command. Without a subcommand it is the
// service (receiver/service/); `apply` rebuilds an image from an offline
// bundle and loads it into the local engine.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "common/util/command_line.h"
#include "receiver/apply/apply_command.h"
#include "receiver/pull/pull_command.h"
#include "receiver/service/serve_command.h"

namespace {

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("deltarecvd");
  logger->set_pattern("deltarecvd: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

int report(const deltasync::Status& status) {
  if (status) return 0;
  std::fprintf(stderr, "deltarecvd: error: %s\n", status.error().message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "deltarecvd: receive container image updates (site side). Without a subcommand it runs "
      "the service that `deltasend IMAGE --to HOST` talks to."};
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.set_config("--config", "/etc/deltasync/deltarecvd.conf",
                 "config file (INI/TOML; keys are the long option names)");
  std::string engine, log_level = "info";
  deltasync::ServeOptions serve;
  std::string cert, key, ca;
  app.add_option("--listen", serve.listen, "address and port to listen on (ADDR:PORT)")
      ->capture_default_str();
  app.add_option("--cert", cert, "this receiver's certificate (PEM)");
  app.add_option("--key", key, "its private key (PEM)");
  app.add_option("--ca", ca, "the CA whose certificates senders must present (PEM)");
  app.add_option("--store", serve.store, "store directory (layers, indexes, checkpoints)")
      ->capture_default_str();
  app.add_option("--store-budget", serve.store_budget,
                 "disk budget for stored layers (e.g. 20G); least recently used go first")
      ->capture_default_str();
  app.add_option("--allow-client", serve.allowed_clients,
                 "accept only senders whose certificate names this (repeatable; default: any "
                 "certificate from --ca)");
  std::vector<std::string> trusted_keys;
  app.add_option("--trusted-key", trusted_keys,
                 "an ed25519 public key (PEM) whose bundles `apply` accepts, besides certificates "
                 "from --ca (repeatable: two keys at once for a rotation)");
  app.add_option("--max-sessions", serve.max_sessions, "concurrent sessions")
      ->capture_default_str();
  app.add_option("--io-timeout", serve.io_timeout_seconds,
                 "seconds a peer may take to send or take one frame")
      ->capture_default_str();
  // The background indexer (receiver/service/engine_indexer.h).
  app.add_flag("--index-engine,!--no-index-engine", serve.index_engine,
               "index the engine's images into the store at start-up and when the engine "
               "reports a new one, so a first sender finds its basis there (config: "
               "index-engine = false turns it off)")
      ->capture_default_str();
  app.add_option("--index-engine-share", serve.index_share_percent,
                 "percent of --store-budget the indexer may fill the store up to")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--index-poll-interval", serve.index_poll_interval_seconds,
                 "seconds between scans of the engine's image list where it gives no image "
                 "events (containerd)")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  // Pull mode (receiver/pull/): the registry and what to watch.
  deltasync::RegistryOptions registry;
  app.add_option("--watch", serve.watch,
                 "keep this REG/REPO:TAG current from its registry (repeatable; pull mode, for "
                 "sites behind NAT; without --cert the service only pulls)");
  app.add_option("--poll-interval", serve.poll_interval_seconds,
                 "seconds between polls of each watched tag (jittered; backoff on failure)")
      ->capture_default_str();
  app.add_option("--registry-ca", registry.ca_file,
                 "a CA (PEM) to trust for registries besides the system's");
  app.add_option("--registry-auth", registry.docker_config,
                 "the Docker CLI config.json with registry credentials (default: "
                 "$DOCKER_CONFIG/config.json, else ~/.docker/config.json)");
  app.add_flag("--registry-insecure", registry.insecure,
               "plain HTTP to registries (a registry on loopback only)");
  bool allow_unsigned_deltas = false;
  app.add_flag("--allow-unsigned-deltas", allow_unsigned_deltas,
               "pull mode: apply deltas that carry no signature");
  app.footer(
      "Examples:\n"
      "  deltarecvd --listen 0.0.0.0:7443 --cert receiver.pem --key receiver.key --ca ca.pem "
      "--store /var/lib/deltarecvd\n"
      "  deltarecvd --config /etc/deltasync/deltarecvd.conf      (as the systemd unit runs it)\n"
      "  deltarecvd apply app-2.0.0.dsb\n"
      "  deltarecvd --watch registry.example.com/app:stable --ca ca.pem   (pull mode only)\n"
      "  deltarecvd pull registry.example.com/app:2.0.0\n"
      "Certificates: /usr/share/deltasync/make-certs.sh (or deploy/make-certs.sh).");
  app.add_option("--engine", engine,
                 "container engine: unix://PATH (Docker, Podman) or "
                 "containerd://PATH[?namespace=NS&snapshotter=NAME] (default: $DOCKER_HOST, else "
                 "the first engine socket found)")
      ->envname("DELTARECVD_ENGINE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();

  deltasync::ApplyCommandOptions apply;
  auto* apply_cmd =
      app.add_subcommand("apply", "rebuild an image from a bundle and load it into the engine");
  apply_cmd->add_option("BUNDLE", apply.bundle, "the bundle file written by `deltasend bundle`")
      ->required();
  apply_cmd->add_flag("--allow-unsigned", apply.allow_unsigned,
                      "apply a bundle that carries no signature (from an older deltasend, or made "
                      "with --unsigned)");
  apply_cmd->add_flag("--json", apply.json, "print the result as JSON");
  apply_cmd->add_flag("-q,--quiet", apply.quiet, "print nothing on success");
  apply_cmd->footer(
      "The engine must hold the base image the bundle was made against (the bundle names its "
      "layers).\n"
      "Nothing is loaded unless every layer rebuilds and verifies.\n"
      "Example:\n  deltarecvd apply app-2.0.0.dsb");

  deltasync::PullOptions pull;
  auto* pull_cmd = app.add_subcommand(
      "pull",
      "bring REG/REPO:TAG into the engine once: a delta from an image held here, else "
      "a plain pull of the missing layers");
  pull_cmd
      ->add_option("REFERENCE", pull.reference,
                   "REG/REPO[:TAG], e.g. registry.example.com/app:2.0.0")
      ->required();
  pull_cmd->add_option("--platform", pull.platform, "os/arch[/variant] (default: this host's)");
  pull_cmd->add_flag("--allow-unsigned", pull.allow_unsigned,
                     "apply a delta that carries no signature");
  bool no_full_pull = false;
  pull_cmd->add_flag("--no-full-pull", no_full_pull,
                     "fail instead of pulling whole layers when no delta fits");
  pull_cmd
      ->add_option("--attempts", pull.attempts,
                   "tries per blob when the link is cut (each resumes where the last stopped)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  pull_cmd->add_flag("--json", pull.json, "print the result as JSON");
  pull_cmd->add_flag("-q,--quiet", pull.quiet, "print nothing on success");
  pull_cmd->footer(
      "Deltas must be signed by a sender this site trusts (--ca and --allow-client, or "
      "--trusted-key), as for apply.\n"
      "Example:\n  deltarecvd pull registry.example.com/app:2.0.0");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; a usage error exits 2.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  // The command line, then DELTARECVD_ENGINE, then the config file (CLI11
  // alone would let the config file win over the variable).
  deltasync::prefer_environment(argc, argv, "--engine", "DELTARECVD_ENGINE", engine);
  if ((*apply_cmd || *pull_cmd) && app.count("--log-level") == 0) log_level = "warn";
  configure_logging(log_level);
  // A misspelt key in the service's config (say `alow-client`) would
  // otherwise run the receiver without the setting: refuse to start.
  if (auto unknown = deltasync::unknown_config_keys(app); !unknown.empty()) {
    std::string keys;
    for (const auto& name : unknown) keys += (keys.empty() ? "'" : ", '") + name + "'";
    std::fprintf(stderr,
                 "deltarecvd: error: config file %s: unknown key%s %s; fix or remove %s (keys are "
                 "the long option names, see deltarecvd --help)\n",
                 deltasync::config_file_path(app).c_str(), unknown.size() > 1 ? "s" : "",
                 keys.c_str(), unknown.size() > 1 ? "them" : "it");
    return 2;
  }
  if (*apply_cmd) {
    apply.engine = engine;
    apply.ca = ca;
    apply.allowed_names = serve.allowed_clients;
    apply.trusted_keys = trusted_keys;
    return report(deltasync::run_apply_command(apply));
  }
  pull.registry = registry;
  pull.ca = ca;
  pull.allowed_names = serve.allowed_clients;
  pull.trusted_keys = trusted_keys;
  if (*pull_cmd) {
    pull.engine = engine;
    pull.store_dir = serve.store;
    pull.allow_full_pull = !no_full_pull;
    // The service's store, shared: a running service may be using it.
    auto budget = deltasync::parse_byte_size(serve.store_budget);
    if (!budget) return report(std::unexpected(budget.error()));
    auto store =
        deltasync::LayerStore::open(serve.store, *budget, deltasync::LayerStore::OpenMode::kShared);
    if (!store)
      return report(
          std::unexpected(std::move(store.error()).with_context("--store " + serve.store)));
    pull.store = store->get();
    return report(deltasync::run_pull_command(pull));
  }
  bool pull_only = cert.empty() && key.empty() && !serve.watch.empty();
  if (!pull_only && (cert.empty() || key.empty() || ca.empty())) {
    std::fprintf(stderr,
                 "deltarecvd: error: the service needs --cert, --key and --ca (or a --config file "
                 "naming them), or --watch REG/REPO:TAG for pull mode alone; see deltarecvd "
                 "--help\n");
    return 2;
  }
  if (!pull_only) serve.identity = deltasync::TlsIdentity{cert, key, ca};
  serve.engine = engine;
  pull.allow_unsigned = allow_unsigned_deltas;
  serve.pull = pull;
  return report(deltasync::run_serve_command(serve));
}
