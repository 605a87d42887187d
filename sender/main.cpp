// deltasend: the build-side command. Each subcommand lives in commands/.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "sender/commands/bundle_command.h"
#include "sender/commands/diff_command.h"

namespace {

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("deltasend");
  logger->set_pattern("deltasend: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

int report(const deltasync::Status& status) {
  if (status) return 0;
  std::fprintf(stderr, "deltasend: error: %s\n", status.error().message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"deltasend: ship container image updates as deltas (build side)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::string engine, log_level = "warn";
  app.add_option(
         "--engine", engine,
         "container engine, unix://PATH (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
      ->envname("DELTASEND_ENGINE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();

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
      ->capture_default_str();
  bundle_cmd->add_option("--threads", bundle.threads, "worker threads for deltas")
      ->capture_default_str();
  bundle_cmd->add_flag("--json", bundle.json, "print the result as JSON");
  bundle_cmd->add_flag("-q,--quiet", bundle.quiet, "print nothing on success");
  bundle_cmd->footer(
      "Examples:\n"
      "  deltasend bundle app:2.0.0 --base app:1.0.0 -o app-2.0.0.dsb\n"
      "  deltasend bundle docker-archive:new.tar --base docker-archive:old.tar -o up.dsb --effort "
      "max\n"
      "Apply it on the site with: deltarecvd apply app-2.0.0.dsb");

  CLI11_PARSE(app, argc, argv);
  configure_logging(log_level);

  if (*diff_cmd) {
    diff.engine = engine;
    return report(deltasync::run_diff_command(diff));
  }
  if (*bundle_cmd) {
    bundle.engine = engine;
    return report(deltasync::run_bundle_command(bundle));
  }
  return 2;
}
