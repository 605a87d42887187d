// deltasend: the build-side command. Each subcommand lives in commands/.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/store/layer_store.h"
#include "common/util/command_line.h"
#include "sender/commands/bundle_command.h"
#include "sender/commands/diff_command.h"
#include "sender/commands/diff_image_command.h"
#include "sender/net/send_command.h"
#include "sender/net/send_report.h"
#include "sender/net/status_command.h"
#include "sender/publish/publish_command.h"

namespace {

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("deltasend");
  logger->set_pattern("deltasend: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

std::string default_config_path() {
  if (const char* home = std::getenv("HOME"); home && *home) {
    std::string user = std::string(home) + "/.config/deltasync/deltasend.conf";
    if (access(user.c_str(), R_OK) == 0) return user;
  }
  return "/etc/deltasync/deltasend.conf";
}

int report(const deltasync::Status& status) {
  if (status) return 0;
  std::fprintf(stderr, "deltasend: error: %s\n", status.error().message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deltasend: ship container image updates as deltas (build side)"};
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options may follow the subcommand
  app.set_config("--config", default_config_path(),
                 "config file (INI/TOML; keys are the long option names: to, cert, key, ca, "
                 "engine)");
  deltasync::SendCommandOptions send;
  std::string cert, key, ca;
  bool no_local_basis = false;
  app.add_option("IMAGE", send.image,
                 "the image to send: app:2.0.0, docker-archive:PATH, oci-archive:PATH, oci:DIR");
  app.add_option("--to", send.sites,
                 "the receiver, HOST[:PORT] (port 7443 by default); repeat for several sites")
      ->envname("DELTASEND_TO")
      ->allow_extra_args(false);
  std::string sites_file;
  app.add_option("--to-file", sites_file,
                 "a file of sites, one HOST[:PORT] per line ('#' starts a comment)");
  app.add_option("--parallel", send.parallel, "sites sent to at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  bool dry_run = false;
  app.add_flag("--dry-run", dry_run,
               "ask the site what it has and print what would be sent (per layer, estimated "
               "bytes and time), sending no layer data");
  std::string rate_text;
  app.add_option("--rate", rate_text,
                 "link rate for --dry-run's time estimate: 2mbit, 512kbit, 10MB/s, ...");
  app.add_option("--cert", cert, "this sender's certificate (PEM)")->envname("DELTASEND_CERT");
  app.add_option("--key", key, "its private key (PEM)")->envname("DELTASEND_KEY");
  app.add_option("--ca", ca, "the CA that signed the receivers' certificates (PEM)")
      ->envname("DELTASEND_CA");
  app.add_option("--effort", send.effort, "fast, default or max: encode time against bytes")
      ->capture_default_str()
      ->check(CLI::IsMember({"fast", "default", "max"}));
  app.add_option("--threads", send.threads, "worker threads for deltas")->capture_default_str();
  app.add_flag("--no-local-basis", no_local_basis,
               "use the site's signatures even when this engine holds the basis");
  app.add_option("--cache-dir", send.cache_dir,
                 "where basis indexes received from sites, TLS sessions and the layer cache are "
                 "kept (default $XDG_CACHE_HOME/deltasync, else ~/.cache/deltasync)");
  std::string cache_budget_text = "20G";
  app.add_option("--cache-budget", cache_budget_text,
                 "disk budget of the layer cache (CACHE/layers: the layers of what was sent, "
                 "bases for LOCAL mode when the engine no longer holds them): 20G, 512M, ...; "
                 "0 turns it off")
      ->capture_default_str();
  bool no_cache = false;
  app.add_flag("--no-cache", no_cache,
               "neither use nor fill the layer cache (the engine, else the site's signatures)");
  app.add_option("--segment-bytes", send.segment_bytes,
                 "layer-stream bytes between the receiver's checkpoints (what a cut connection "
                 "may cost again)")
      ->capture_default_str();
  // Hidden: seconds the site may take to take or send one frame (tests of stalled links).
  int io_timeout_seconds = 120;
  app.add_option("--io-timeout", io_timeout_seconds,
                 "seconds the site may take to take or send one frame")
      ->check(CLI::Range(1, 86400))
      ->group("");
  app.add_flag("--require-same-id", send.require_same_id,
               "fail before sending unless a site on Docker's containerd image store will hold "
               "the image under this build host's own Id (every compressed blob rebuildable)");
  app.add_option("--platform", send.platform,
                 "which image of a multi-platform image to ship: os/arch[/variant], e.g. "
                 "linux/arm64 (default: this host's, as the engine chooses)");
  bool send_json = false, send_quiet = false;
  app.add_flag("--json", send_json,
               "print newline-delimited JSON events on stdout, the last one the result");
  app.add_flag("-q,--quiet", send_quiet, "print nothing on success (errors still go to stderr)");
  app.footer(
      "Examples:\n"
      "  deltasend app:2.0.0 --to edge-host --cert sender.pem --key sender.key --ca ca.pem\n"
      "  deltasend app:2.0.0 --to edge-host:7443      (cert, key, ca from "
      "~/.config/deltasync/deltasend.conf or DELTASEND_* variables)\n"
      "  deltasend app:2.0.0 --to edge-host --dry-run --rate 2mbit\n"
      "  deltasend app:2.0.0 --to site-a --to site-b --to site-c --parallel 2\n"
      "  deltasend app:2.0.0 --to-file sites.txt --json\n"
      "  deltasend bundle app:2.0.0 --base app:1.0.0 -o app-2.0.0.dsb\n"
      "  deltasend diff app:1.0.0 app:2.0.0\n"
      "Exit status 0 means every site holds the image, verified (or, with --dry-run, answered).");
  std::string engine, log_level = "warn";
  app.add_option("--engine", engine,
                 "container engine: unix://PATH (Docker, Podman) or "
                 "containerd://PATH[?namespace=NS&snapshotter=NAME] (default: $DOCKER_HOST, else "
                 "the first engine socket found)")
      ->envname("DELTASEND_ENGINE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  deltasync::DiffCommandOptions diff;
  auto* diff_cmd =
      app.add_subcommand("diff", "compare the files of two images (added, changed, removed)");
  diff_cmd
      ->add_option("OLD", diff.old_image,
                   "the older image: app:1.0.0, docker-archive:PATH, oci-archive:PATH, oci:DIR")
      ->required();
  diff_cmd->add_option("NEW", diff.new_image, "the newer image")->required();
  diff_cmd->add_flag("--json", diff.json, "print a JSON object instead of text");
  diff_cmd->add_flag("--summary", diff.summary_only, "print the totals only");
  diff_cmd->add_flag("--include-dir-mtime", diff.include_directory_mtime,
                     "report directories whose only change is mtime");
  diff_cmd->footer(
      "Examples:\n"
      "  deltasend diff app:1.0.0 app:2.0.0\n"
      "  deltasend diff --json docker-archive:old.tar docker-archive:new.tar");

  deltasync::BundleCommandOptions bundle;
  auto* bundle_cmd = app.add_subcommand(
      "bundle", "write an offline bundle that updates a site holding --base to IMAGE");
  bundle_cmd
      ->add_option("IMAGE", bundle.image, "the image to ship: app:2.0.0, docker-archive:PATH, ...")
      ->required();
  bundle_cmd->add_option("--base", bundle.base,
                         "the image the site already has (its layers are not sent)");
  bundle_cmd->add_option("-o,--output", bundle.output, "the bundle file to write")->required();
  bundle_cmd
      ->add_option("--effort", bundle.effort, "fast, default or max: encode time against bytes")
      ->capture_default_str()
      ->check(CLI::IsMember({"fast", "default", "max"}));
  bundle_cmd->add_option("--threads", bundle.threads, "worker threads for deltas")
      ->capture_default_str();
  bundle_cmd->add_flag("--require-same-id", bundle.require_same_id,
                       "fail unless a site on Docker's containerd image store will hold the image "
                       "under this build host's own Id");
  bundle_cmd->add_option("--platform", bundle.platform,
                         "which image of a multi-platform image: os/arch[/variant]");
  bundle_cmd
      ->add_option("--signing-key", bundle.signing_key,
                   "sign with this ed25519 private key (PEM) instead of --cert/--key")
      ->envname("DELTASEND_SIGNING_KEY");
  bundle_cmd->add_flag("--unsigned", bundle.unsigned_bundle,
                       "write no signature (sites must then pass --allow-unsigned)");
  bundle_cmd->add_flag("--json", bundle.json, "print the result as JSON");
  bundle_cmd->add_flag("-q,--quiet", bundle.quiet, "print nothing on success");
  bundle_cmd->footer(
      "Examples:\n"
      "  deltasend bundle app:2.0.0 --base app:1.0.0 -o app-2.0.0.dsb\n"
      "  deltasend bundle docker-archive:new.tar --base docker-archive:old.tar -o up.dsb --effort "
      "max\n"
      "Apply it on the site with: deltarecvd apply app-2.0.0.dsb");

  deltasync::DiffImageCommandOptions diff_image;
  auto* diff_image_cmd = app.add_subcommand(
      "diff-image",
      "build in the engine an image of BASE's layers plus one layer of the changes to TARGET");
  diff_image_cmd->add_option("BASE", diff_image.base_image, "the older image: app:1.0.0, ...")
      ->required();
  diff_image_cmd
      ->add_option("TARGET", diff_image.target_image,
                   "the newer image, whose file system and config the new image gets")
      ->required();
  diff_image_cmd->add_option("-t,--tag", diff_image.tags, "name of the new image (repeatable)")
      ->required()
      ->allow_extra_args(false);
  diff_image_cmd->add_flag("--json", diff_image.json, "print the result as JSON");
  diff_image_cmd->add_flag("-q,--quiet", diff_image.quiet, "print nothing on success");
  diff_image_cmd->footer(
      "Examples:\n"
      "  deltasend diff-image app:1.0.0 app:2.0.0 -t app:2.0.0-diff\n"
      "  deltasend diff-image --json app:1.0.0 docker-archive:app-2.0.0.tar -t app:2.0.0-diff\n"
      "A registry then moves only the extra layer to hosts that hold app:1.0.0\n"
      "(docker push app:2.0.0-diff). See docs/diff-image.md.");

  deltasync::PublishCommandOptions publish;
  std::string part_size_text = "8M";
  auto* publish_cmd = app.add_subcommand(
      "publish",
      "push IMAGE and one delta per --base to an OCI registry, for sites that pull (NAT)");
  publish_cmd->add_option("IMAGE", publish.image, "the image to publish: app:2.0.0, ...")
      ->required();
  publish_cmd->add_option("--base", publish.bases,
                          "an image sites already hold (repeatable: one delta per base)");
  publish_cmd
      ->add_option("--registry", publish.registry,
                   "where: REG/REPO[:TAG] (TAG defaults to IMAGE's), e.g. "
                   "registry.example.com:5000/app")
      ->required();
  publish_cmd
      ->add_option("--part-size", part_size_text,
                   "deltas are cut into parts of this size (a cut costs at most one)")
      ->capture_default_str();
  publish_cmd
      ->add_option("--effort", publish.effort, "fast, default or max: encode time against bytes")
      ->capture_default_str()
      ->check(CLI::IsMember({"fast", "default", "max"}));
  publish_cmd->add_option("--threads", publish.threads, "worker threads for deltas")
      ->capture_default_str();
  publish_cmd->add_option("--platform", publish.platform,
                          "which image of a multi-platform image: os/arch[/variant]");
  publish_cmd
      ->add_option("--signing-key", publish.signing_key,
                   "sign the deltas with this ed25519 private key (PEM) instead of --cert/--key")
      ->envname("DELTASEND_SIGNING_KEY");
  publish_cmd->add_flag("--unsigned", publish.unsigned_bundle,
                        "sign nothing (sites must then allow unsigned deltas)");
  publish_cmd->add_option("--registry-ca", publish.registry_options.ca_file,
                          "a CA (PEM) to trust for the registry besides the system's");
  publish_cmd->add_option("--registry-auth", publish.registry_options.docker_config,
                          "the Docker CLI config.json with the registry's credentials (default: "
                          "$DOCKER_CONFIG/config.json, else ~/.docker/config.json)");
  publish_cmd->add_flag("--registry-insecure", publish.registry_options.insecure,
                        "plain HTTP to the registry (a registry on loopback only)");
  publish_cmd->add_flag("--json", publish.json, "print the result as JSON");
  publish_cmd->add_flag("-q,--quiet", publish.quiet, "print nothing on success");
  publish_cmd->footer(
      "Examples:\n"
      "  deltasend publish app:2.0.0 --base app:1.0.0 --base app:1.5.0 --registry "
      "registry.example.com/app\n"
      "Sites keep it current with deltarecvd --watch registry.example.com/app:2.0.0 (or a "
      "moving tag), or once with deltarecvd pull. See docs/registry.md.");

  bool status_json = false;
  auto* status_cmd = app.add_subcommand(
      "status", "ask a site what it holds (images, store, recent transfers) and if it is healthy");
  status_cmd->add_flag("--json", status_json, "print the answer as JSON");
  status_cmd->footer(
      "Uses --to, --cert, --key, --ca like sending (flags, DELTASEND_* or the config file).\n"
      "Example:\n  deltasend status --to edge-host");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a usage error exits 2, as our own do.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  deltasync::prefer_environment(argc, argv, "--cert", "DELTASEND_CERT", cert);
  deltasync::prefer_environment(argc, argv, "--key", "DELTASEND_KEY", key);
  deltasync::prefer_environment(argc, argv, "--ca", "DELTASEND_CA", ca);
  deltasync::prefer_environment(argc, argv, "--engine", "DELTASEND_ENGINE", engine);
  if (const char* to = std::getenv("DELTASEND_TO");
      to && *to && !deltasync::given_on_command_line(argc, argv, "--to")) {
    send.sites = {to};
  }
  configure_logging(log_level);
  for (const std::string& unknown_key : deltasync::unknown_config_keys(app)) {
    std::fprintf(stderr, "deltasend: warning: config file %s: unknown key '%s' (ignored)\n",
                 deltasync::config_file_path(app).c_str(), unknown_key.c_str());
  }

  // Options written before a subcommand belong to the top level (the send):
  // those a subcommand has too are passed on when it did not get its own
  // (`deltasend --effort max bundle ...`), and the send-only ones are a
  // usage error rather than silently ignored.
  if (CLI::App* sub = !app.get_subcommands().empty() ? app.get_subcommands().front() : nullptr) {
    // (A config file or DELTASEND_* may set send options for every run; only
    // the command line is held against a subcommand.)
    auto top_given = [&](const char* name) { return app.get_option(name)->count() > 0; };
    auto top_typed = [&](const char* name) {
      return top_given(name) && deltasync::given_on_command_line(argc, argv, name);
    };
    auto sub_given = [&](const char* name) {
      const CLI::Option* option = sub->get_option_no_throw(name);
      return option != nullptr && option->count() > 0;
    };
    for (const char* name : {"--to-file", "--parallel", "--dry-run", "--rate", "--no-local-basis",
                             "--segment-bytes", "--cache-budget", "--no-cache"}) {
      if (top_typed(name)) {
        std::fprintf(stderr,
                     "deltasend: error: %s does not apply to '%s' (see deltasend %s --help)\n",
                     name, sub->get_name().c_str(), sub->get_name().c_str());
        return 2;
      }
    }
    if (sub != status_cmd && top_typed("--to")) {
      std::fprintf(stderr, "deltasend: error: --to does not apply to '%s'\n",
                   sub->get_name().c_str());
      return 2;
    }
    if (sub == bundle_cmd) {
      if (top_given("--effort") && !sub_given("--effort")) bundle.effort = send.effort;
      if (top_given("--threads") && !sub_given("--threads")) bundle.threads = send.threads;
      if (top_given("--json")) bundle.json = true;
      if (top_given("--require-same-id")) bundle.require_same_id = true;
      if (top_given("--platform") && !sub_given("--platform")) bundle.platform = send.platform;
      if (top_given("--quiet")) bundle.quiet = true;
    } else if (sub == diff_cmd) {
      if (top_given("--json")) diff.json = true;
    } else if (sub == diff_image_cmd) {
      if (top_given("--json")) diff_image.json = true;
      if (top_given("--quiet")) diff_image.quiet = true;
    } else if (sub == publish_cmd) {
      if (top_given("--effort") && !sub_given("--effort")) publish.effort = send.effort;
      if (top_given("--threads") && !sub_given("--threads")) publish.threads = send.threads;
      if (top_given("--json")) publish.json = true;
      if (top_given("--platform") && !sub_given("--platform")) publish.platform = send.platform;
      if (top_given("--quiet")) publish.quiet = true;
    } else if (sub == status_cmd) {
      if (top_given("--json")) status_json = true;
    }
  }

  if (*diff_cmd) {
    diff.engine = engine;
    return report(deltasync::run_diff_command(diff));
  }
  if (*diff_image_cmd) {
    diff_image.engine = engine;
    return report(deltasync::run_diff_image_command(diff_image));
  }
  if (*bundle_cmd) {
    bundle.engine = engine;
    bundle.cert = cert;
    bundle.key = key;
    return report(deltasync::run_bundle_command(bundle));
  }
  if (*publish_cmd) {
    auto part_size = deltasync::parse_byte_size(part_size_text);
    if (!part_size || *part_size < 4096) {
      std::fprintf(stderr,
                   "deltasend: error: --part-size %s: give a size of at least 4K (e.g. 8M)\n",
                   part_size_text.c_str());
      return 2;
    }
    publish.part_size = *part_size;
    publish.engine = engine;
    publish.cert = cert;
    publish.key = key;
    return report(deltasync::run_publish_command(publish));
  }
  if (*status_cmd) {
    if (send.sites.size() != 1 || cert.empty() || key.empty() || ca.empty()) {
      std::fprintf(stderr, "deltasend: error: status needs one --to, --cert, --key and --ca\n");
      return 2;
    }
    return report(deltasync::run_status_command(deltasync::StatusCommandOptions{
        send.sites.front(), deltasync::TlsIdentity{cert, key, ca}, status_json}));
  }
  if (!sites_file.empty()) {
    auto listed = deltasync::read_sites_file(sites_file);
    if (!listed) return report(std::unexpected(listed.error()));
    send.sites.insert(send.sites.end(), listed->begin(), listed->end());
  }
  double rate = 0;
  if (!rate_text.empty()) {
    auto parsed = deltasync::parse_rate(rate_text);
    if (!parsed) return report(std::unexpected(parsed.error()));
    rate = *parsed;
  }
  if (send.image.empty() || send.sites.empty()) {
    std::fprintf(stderr,
                 "deltasend: error: give an image and --to HOST (or a subcommand); see deltasend "
                 "--help\n");
    return 2;
  }
  if (cert.empty() || key.empty() || ca.empty()) {
    std::fprintf(stderr,
                 "deltasend: error: sending needs --cert, --key and --ca (flags, DELTASEND_CERT/"
                 "KEY/CA, or the config file %s)\n",
                 default_config_path().c_str());
    return 2;
  }
  send.identity = deltasync::TlsIdentity{cert, key, ca};
  send.engine = engine;
  send.use_local_basis = !no_local_basis;
  auto cache_budget = deltasync::parse_byte_size(cache_budget_text);
  if (!cache_budget) {
    std::fprintf(stderr, "deltasend: error: --cache-budget: %s\n",
                 cache_budget.error().message().c_str());
    return 2;
  }
  send.layer_cache_budget = no_cache ? 0 : *cache_budget;
  send.dry_run = dry_run;
  send.io_timeout = std::chrono::seconds(io_timeout_seconds);
  deltasync::ProgressBoard board(deltasync::choose_progress_style(send_json, send_quiet));
  auto outcomes = deltasync::run_send_command(send, board);
  return deltasync::report_send_outcomes(send, outcomes, board, rate, send_quiet);
}
