// Test support: fixture images (see test_images.h). The base image comes from
// scripts/make-base-image.sh, located through DELTASYNC_SOURCE_DIR, which
// tests/CMakeLists.txt defines for this file.
#include "tests/support/test_images.h"

#include "tests/support/test_engines.h"

#ifndef DELTASYNC_SOURCE_DIR
#error "DELTASYNC_SOURCE_DIR must name the source tree (set in tests/CMakeLists.txt)"
#endif

namespace deltasync::testing {

std::filesystem::path make_base_image_script() {
  return std::filesystem::path(DELTASYNC_SOURCE_DIR) / "scripts" / "make-base-image.sh";
}

Status ensure_base_image(const std::string& engine, const std::string& ref) {
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
