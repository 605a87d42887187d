// The fuzz targets: one function per parser that reads hostile input.
//
// Each takes one input (bytes from libFuzzer, or a corpus / regression file
// replayed by tests/unit/fuzz_regression_test.cpp) and returns 0. It never
// fails for a malformed input, which every parser must refuse with an Error;
// it aborts (fuzz::violation, which libFuzzer reports as a crash) when a
// parser breaks one of its promises: a crash, undefined behaviour or a
// memory error (caught by the sanitizers in the fuzz build), writing beyond
// a limit, or a result that contradicts the input (e.g. a tar that splits
// but does not reassemble to the same bytes).
//
// The same sources are compiled into the libFuzzer executables (clang,
// DELTASYNC_FUZZ, tests/fuzz/fuzz_main.cpp) and into the g++ test build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace deltasync::fuzz {

// Session frames: u32 big-endian length-prefixed frames, each a
// wire::SessionFrame, through WireChannel::receive/expect and
// DataFrameSource. Input: [selector] frame*.
int fuzz_session_frame(const uint8_t* data, size_t size);
// A tar through split_tar; when it splits, metadata + payloads must
// reassemble to the input bit for bit. Input: the tar.
int fuzz_tar_split(const uint8_t* data, size_t size);
// A layer stream decoded against the fixed two-layer basis in
// tests/fuzz/data/. Input: [mode] stream (mode 1: u32-prefixed segments).
int fuzz_layer_stream(const uint8_t* data, size_t size);
// rsync_patch / local_delta_decode / anchored_delta_decode (and loading an
// rsync signature) against a fixed basis. Input: [op] [limit] delta.
int fuzz_block_delta(const uint8_t* data, size_t size);
// BundleReader on a file: verify(), header, every layer's stream.
// Input: [mode] file (mode 1: the target appends a valid trailer).
int fuzz_bundle_reader(const uint8_t* data, size_t size);
// open_image on a docker-archive: / oci-archive: file, reading every layer.
// Input: [transport] archive.
int fuzz_archive_reader(const uint8_t* data, size_t size);
// decode_layer_index. Input: [mode] bytes (mode 1: the target adds the
// checksum and the zstd envelope, so the fuzzer reaches the entry parser).
int fuzz_index_codec(const uint8_t* data, size_t size);

struct Target {
  std::string_view name;  // "session_frame": fuzz_session_frame, corpus and regressions folder
  int (*function)(const uint8_t*, size_t);
};
// Every target, in the order scripts/fuzz.sh runs them.
const std::vector<Target>& targets();

// decode_distribution: the build host's distribution identity from a Commit
// or a bundle header. Input: [mode] [layers] bytes (mode 1: plain message).
int fuzz_distribution_codec(const uint8_t* data, size_t size);

}  // namespace deltasync::fuzz
