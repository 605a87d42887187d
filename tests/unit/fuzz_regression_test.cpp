// Replays the fuzz corpora through the fuzz target functions, compiled
// without libFuzzer (tests/fuzz/, docs/fuzzing.md):
//   - the seed corpus made by fuzz_make_seeds (the CTest fixture fuzz_seeds
//     writes it and passes its directory in DELTASYNC_FUZZ_SEEDS_DIR);
//   - tests/fuzz/regressions/<target>/: minimized inputs of every bug the
//     fuzzers found, each of which crashed or broke a promise before its fix.
// A target that breaks a promise aborts (fuzz::violation), which fails the
// test; so does a crash. Label fuzz-smoke: ctest -L fuzz-smoke.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

// Test names and failure messages show the target's name.
void PrintTo(const Target& target, std::ostream* os) {
  *os << target.name;
}

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs every file through `target`; returns how many ran.
size_t replay(const Target& target, const std::vector<fs::path>& files) {
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    std::string data = read_bytes(file);
    // A crash here takes the test with it; its output names the file
    // (printed first, since a crash loses gtest's trace).
    std::fprintf(stderr, "replay %s\n", file.c_str());
    EXPECT_EQ(0, target.function(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }
  return files.size();
}

class FuzzReplay : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override { quiet_logs(); }
};

TEST_P(FuzzReplay, SeedCorpus) {
  const char* seeds = std::getenv("DELTASYNC_FUZZ_SEEDS_DIR");
  ASSERT_TRUE(seeds && *seeds) << "DELTASYNC_FUZZ_SEEDS_DIR is not set (run through ctest, "
                                  "whose fuzz_seeds fixture makes the corpus)";
  std::vector<fs::path> files = files_in(fs::path(seeds) / GetParam().name);
  // An empty corpus would make this test pass without testing anything.
  ASSERT_GE(files.size(), 3u) << "too few seeds in " << seeds << "/" << GetParam().name;
  replay(GetParam(), files);
}

TEST_P(FuzzReplay, Regressions) {
  fs::path dir = fs::path(DELTASYNC_FUZZ_REGRESSIONS_DIR) / GetParam().name;
  size_t ran = replay(GetParam(), files_in(dir));
  std::printf("%zu regression inputs for fuzz_%s\n", ran, std::string(GetParam().name).c_str());
}

// Violations are crashes: a broken promise cannot pass unnoticed.
TEST(FuzzSupport, ViolationAborts) {
  EXPECT_DEATH(violation("test", "a promise was broken"), "fuzz_test: VIOLATION");
}

TEST(FuzzSupport, FramesSplitAsWritten) {
  std::string framed;
  append_frame(framed, "one");
  append_frame(framed, "");
  append_frame(framed, std::string(300, 'x'));
  framed += std::string(
      "\0\0\0\x09"
      "abc",
      7);
  std::vector<std::string_view> frames = split_frames(framed);
  ASSERT_EQ(4u, frames.size());
  EXPECT_EQ("one", frames[0]);
  EXPECT_EQ("", frames[1]);
  EXPECT_EQ(std::string(300, 'x'), frames[2]);
  EXPECT_EQ("abc", frames[3]);  // a length beyond the end takes what is left
}

INSTANTIATE_TEST_SUITE_P(AllTargets, FuzzReplay, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<Target>& param_info) {
                           return std::string(param_info.param.name);
                         });

}  // namespace
}  // namespace deltasync::fuzz
