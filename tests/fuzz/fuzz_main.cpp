// The libFuzzer entry point of one fuzz executable: DELTASYNC_FUZZ_ENTRY
// names the target function (tests/fuzz/CMakeLists.txt compiles this file
// once per target).
#include <spdlog/spdlog.h>

#include "tests/fuzz/fuzz_targets.h"

#ifndef DELTASYNC_FUZZ_ENTRY
#error "DELTASYNC_FUZZ_ENTRY must name a target function, e.g. fuzz_tar_split"
#endif

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Refused inputs are the normal case; do not log each one.
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return deltasync::fuzz::DELTASYNC_FUZZ_ENTRY(data, size);
}
