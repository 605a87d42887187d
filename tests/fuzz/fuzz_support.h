// Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.cpp), the seed
// generator (make_seeds.cpp) and the regression replay
// (tests/unit/fuzz_regression_test.cpp).
//
// Thread safety: the fixtures are built once, on first use, and read-only
// after; the fuzz targets run on one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/index/layer_index.h"
#include "common/io/file.h"
#include "common/layerstream/basis.h"
#include "common/layerstream/layer_stream.h"

namespace deltasync::fuzz {

// A broken promise of the code under test (not a malformed input): prints
// "fuzz_<target>: <what>" and aborts, which libFuzzer reports as a crash and
// keeps the input; the replay test then dies too.
[[noreturn]] void violation(std::string_view target, const std::string& what);

// Refused inputs are the normal case: silences spdlog and protobuf's log
// (which reports every string field that is not UTF-8).
void quiet_logs();

// Reads the fuzz input front to back; past the end every read yields zeros.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  uint8_t byte();
  uint32_t u32_be();
  // Up to `n` bytes (fewer at the end).
  std::string_view bytes(size_t n);
  std::string_view rest() const { return rest_; }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// Splits `data` into frames: u32 big-endian length, then that many bytes
// (a length beyond the end takes what is left). The same framing carries
// segments in fuzz_layer_stream.
std::vector<std::string_view> split_frames(std::string_view data);
// Appends one frame in that framing.
void append_frame(std::string& out, std::string_view frame);

// An anonymous in-memory file (memfd) holding `data`, for APIs that read a
// path or a descriptor; path() is /proc/self/fd/N.
class MemFile {
 public:
  static MemFile create(std::string_view data);
  MemFile(MemFile&&) = default;
  int fd() const { return fd_.get(); }
  std::filesystem::path path() const;
  uint64_t size() const;

 private:
  explicit MemFile(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// tests/fuzz/data (DELTASYNC_FUZZ_DATA_DIR, compiled in; the environment
// variable of that name overrides it).
std::filesystem::path data_dir();

// The layer-stream basis: tests/fuzz/data/layer_basis_{0,1}.tar (GNU tar,
// gnu and posix formats; see make-layer-basis.sh), indexed and built into
// a Basis exactly as the receiver does.
struct LayerBasis {
  std::vector<UniqueFd> tars;
  std::vector<LayerIndex> indexes;
  std::unique_ptr<Basis> basis;
  LayerFiles files;
};
const LayerBasis& layer_basis();

// The fixed basis file of fuzz_block_delta: 40 KiB of text and
// pseudo-random bytes, the same in every build.
const std::string& block_delta_basis();

// Limits the targets give the decoders, and check they were kept.
constexpr uint64_t kMaxRebuiltLayer = 8 << 20;  // fuzz_layer_stream
constexpr uint64_t kMaxLayerRead = 16 << 20;  // fuzz_archive_reader / bundle: bytes read per layer

}  // namespace deltasync::fuzz
