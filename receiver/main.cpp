// deltarecvd: the site-side command. `apply` rebuilds an image from an
// offline bundle and loads it into the local engine.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "receiver/apply/apply_command.h"

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
  CLI::App app{"deltarecvd: receive container image updates (site side)"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string engine, log_level = "warn";
  app.add_option(
         "--engine", engine,
         "container engine, unix://PATH (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
      ->envname("DELTARECVD_ENGINE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();

  deltasync::ApplyCommandOptions apply;
  auto* apply_cmd =
      app.add_subcommand("apply", "rebuild an image from a bundle and load it into the engine");
  apply_cmd->add_option("BUNDLE", apply.bundle, "the bundle file written by `deltasend bundle`")
      ->required();
  apply_cmd->add_flag("--json", apply.json, "print the result as JSON");
  apply_cmd->add_flag("-q,--quiet", apply.quiet, "print nothing on success");
  apply_cmd->footer(
      "The engine must hold the base image the bundle was made against (the bundle names its "
      "layers).\n"
      "Nothing is loaded unless every layer rebuilds and verifies.\n"
      "Example:\n  deltarecvd apply app-2.0.0.dsb");

  CLI11_PARSE(app, argc, argv);
  configure_logging(log_level);
  if (*apply_cmd) {
    apply.engine = engine;
    return report(deltasync::run_apply_command(apply));
  }
  return 2;
}
