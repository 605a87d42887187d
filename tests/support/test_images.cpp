// Test support: fixture images (see test_images.h). The base image comes from
// scripts/make-base-image.sh, located through DELTASYNC_SOURCE_DIR, which
// tests/CMakeLists.txt defines for this file.
#include "tests/support/test_images.h"

#include <unistd.h>

#include <cstdio>

#include "tests/support/ctr_cli.h"

#include "tests/support/test_engines.h"

#ifndef DELTASYNC_SOURCE_DIR
#error "DELTASYNC_SOURCE_DIR must name the source tree (set in tests/CMakeLists.txt)"
#endif

namespace deltasync::testing {

std::filesystem::path make_base_image_script() {
  return std::filesystem::path(DELTASYNC_SOURCE_DIR) / "scripts" / "make-base-image.sh";
}

Status ensure_base_image(const std::string& engine, const std::string& ref) {
  if (is_containerd_engine(engine)) {
    // No docker here: made on the build host's engine, then imported by ctr.
    if (!ctr_image(engine, ref).target.empty()) return ok_status();
    std::string sender;
    if (!get_sender_engine(&sender)) return make_error(ErrorCode::kEngine, "no sender engine");
    DS_RETURN_IF_ERROR(ensure_base_image(sender, ref));
    std::string archive = "/var/tmp/ds-base-" + std::to_string(::getpid()) + ".tar";
    CommandResult saved = run_docker(sender, {"save", "-o", archive, ref});
    CommandResult loaded =
        saved.ok() ? run_docker(engine, {"load", "-i", archive}) : CommandResult{};
    std::remove(archive.c_str());
    if (!saved.ok() || !loaded.ok())
      return make_error(ErrorCode::kEngine, "base image into " + engine + ": " +
                                                saved.error_output + loaded.error_output);
    return ok_status();
  }
  CommandResult result =
      run_command({make_base_image_script().string(), engine, ref},
                  {{"DELTASYNC_DOCKER_CLI", docker_cli()}, {"DOCKER_CLI_HINTS", "false"}});
  if (!result.ok()) {
    return make_error(ErrorCode::kEngine, "make-base-image.sh " + engine + " " + ref +
                                              " failed (exit " + std::to_string(result.exit_code) +
                                              "): " + result.error_output + result.output);
  }
  return ok_status();
}

}  // namespace deltasync::testing
