#include "tests/fuzz/fuzz_support.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "common/crypto/digest.h"
#include "tests/fuzz/fuzz_targets.h"

#ifndef DELTASYNC_FUZZ_DATA_DIR
#error "DELTASYNC_FUZZ_DATA_DIR must name tests/fuzz/data (tests/fuzz/CMakeLists.txt)"
#endif

namespace deltasync::fuzz {

void violation(std::string_view target, const std::string& what) {
  std::fprintf(stderr, "\nfuzz_%.*s: VIOLATION: %s\n", static_cast<int>(target.size()),
               target.data(), what.c_str());
  std::fflush(stderr);
  std::abort();
}

void quiet_logs() {
  spdlog::set_level(spdlog::level::off);
  google::protobuf::SetLogHandler(nullptr);
}

uint8_t InputReader::byte() {
  if (rest_.empty()) return 0;
  auto b = static_cast<uint8_t>(rest_.front());
  rest_.remove_prefix(1);
  return b;
}

uint32_t InputReader::u32_be() {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
  return v;
}

std::string_view InputReader::bytes(size_t n) {
  std::string_view out = rest_.substr(0, n);
  rest_.remove_prefix(out.size());
  return out;
}

std::vector<std::string_view> split_frames(std::string_view data) {
  std::vector<std::string_view> frames;
  InputReader in(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  while (!in.empty()) {
    uint32_t length = in.u32_be();
    frames.push_back(in.bytes(length));
  }
  return frames;
}

void append_frame(std::string& out, std::string_view frame) {
  auto n = static_cast<uint32_t>(frame.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(frame);
}

MemFile MemFile::create(std::string_view data) {
  int fd = ::memfd_create("deltasync-fuzz", MFD_CLOEXEC);
  if (fd < 0) violation("support", std::string("memfd_create: ") + std::strerror(errno));
  UniqueFd owned(fd);
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) violation("support", std::string("write memfd: ") + std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::lseek(fd, 0, SEEK_SET) != 0) violation("support", "lseek memfd");
  return MemFile(std::move(owned));
}

std::filesystem::path MemFile::path() const {
  return "/proc/self/fd/" + std::to_string(fd());
}

uint64_t MemFile::size() const {
  struct stat st {};
  if (::fstat(fd(), &st) != 0) violation("support", "fstat memfd");
  return static_cast<uint64_t>(st.st_size);
}

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("DELTASYNC_FUZZ_DATA_DIR"); env && *env) return env;
  return DELTASYNC_FUZZ_DATA_DIR;
}

const LayerBasis& layer_basis() {
  static const LayerBasis* basis = [] {
    auto* b = new LayerBasis;
    for (int i = 0; i < 2; ++i) {
      std::filesystem::path tar = data_dir() / ("layer_basis_" + std::to_string(i) + ".tar");
      auto source = open_file_source(tar);
      if (!source) violation("layer_stream", "basis: " + source.error().message());
      HashingSource hashed(**source);
      auto index = build_layer_index(hashed, Digest(), tar.string());
      if (!index) violation("layer_stream", "basis: " + index.error().message());
      index->diff_id = hashed.finish();
      auto fd = open_for_read(tar);
      if (!fd) violation("layer_stream", "basis: " + fd.error().message());
      b->files.fds.push_back(fd->get());
      b->tars.push_back(std::move(*fd));
      b->indexes.push_back(std::move(*index));
    }
    std::vector<const LayerIndex*> layers;
    for (const LayerIndex& index : b->indexes) layers.push_back(&index);
    b->basis = std::make_unique<Basis>(Basis::build(layers));
    return b;
  }();
  return *basis;
}

const std::string& block_delta_basis() {
  static const std::string basis = [] {
    std::string out;
    // Text with repeats (what configs and scripts look like) ...
    for (int i = 0; out.size() < 20000; ++i) {
      out += "line " + std::to_string(i) + ": key_" + std::to_string(i % 37) + " = value " +
             std::to_string((i * 7919) % 1000) + "\n";
    }
    // ... then bytes from a fixed linear congruential generator (binaries).
    uint32_t state = 12345;
    while (out.size() < 40960) {
      state = state * 1103515245u + 12345u;
      out.push_back(static_cast<char>(state >> 23));
    }
    return out;
  }();
  return basis;
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all{
      {"session_frame", fuzz_session_frame}, {"tar_split", fuzz_tar_split},
      {"layer_stream", fuzz_layer_stream},   {"block_delta", fuzz_block_delta},
      {"bundle_reader", fuzz_bundle_reader}, {"archive_reader", fuzz_archive_reader},
      {"index_codec", fuzz_index_codec},     {"distribution_codec", fuzz_distribution_codec},
  };
  return all;
}

}  // namespace deltasync::fuzz
