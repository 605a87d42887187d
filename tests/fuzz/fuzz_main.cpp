// The libFuzzer entry point of one fuzz executable: DELTASYNC_FUZZ_ENTRY
// names the target function (tests/fuzz/CMakeLists.txt compiles this file
// once per target).
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

#ifndef DELTASYNC_FUZZ_ENTRY
#error "DELTASYNC_FUZZ_ENTRY must name a target function, e.g. fuzz_tar_split"
#endif

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deltasync::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return deltasync::fuzz::DELTASYNC_FUZZ_ENTRY(data, size);
}
