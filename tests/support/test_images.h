// Test support: fixture images built without any registry.
//
// ensure_base_image() gives an engine a minimal image with a shell (static
// busybox and its applet links, /tmp, /etc/passwd; CMD ["/bin/sh"]), made by
// scripts/make-base-image.sh from the host's busybox-static binary and
// `docker import`. Tests build FROM it with `RUN` steps (classic builder,
// --network none; see build_image() in test_engines.h). The layer is tarred
// deterministically, so the same busybox binary gives the same image ID.
//
// Thread safety: may be called from any thread; the script is idempotent and
// a concurrent import of the same reference is harmless.
#pragma once

#include <filesystem>
#include <string>

#include "common/util/result.h"

namespace deltasync::testing {

// The reference tests use for the busybox base image.
inline constexpr const char* kBaseImageRef = "deltasync-base:busybox";

// scripts/make-base-image.sh in the source tree.
std::filesystem::path make_base_image_script();

// Makes sure `ref` exists in `engine` (a unix:// address), importing it with
// make-base-image.sh if not. Errors carry the script's output.
Status ensure_base_image(const std::string& engine, const std::string& ref = kBaseImageRef);

}  // namespace deltasync::testing
