// Test helper: splits a tar into its metadata stream and payload stream and
// rebuilds it, reporting digests of the input and the output.
#pragma once

#include <filesystem>
#include <string>

#include "common/crypto/digest.h"
#include "common/io/stream.h"

namespace deltasync::testing {

struct RoundTrip {
  Digest input_digest;
  Digest output_digest;
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
  uint64_t metadata_bytes = 0;
  uint64_t payload_bytes = 0;
  uint64_t entries = 0;
};

// Splits `input` into in-memory metadata and a payload file in `scratch`,
// reassembles, and hashes both sides.
Result<RoundTrip> round_trip_tar(ByteSource& input, const std::filesystem::path& scratch);
Result<RoundTrip> round_trip_tar_file(const std::filesystem::path& tar,
                                      const std::filesystem::path& scratch);

// Runs a shell command; returns its exit status (and fails the test on -1).
int run_shell(const std::string& command);
// Runs a shell command and returns its stdout (trailing newline stripped).
std::string shell_output(const std::string& command);

}  // namespace deltasync::testing
