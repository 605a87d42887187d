#include "tests/support/test_files.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

namespace deltasync::testing {

void write_file(const std::filesystem::path& path, std::string_view content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out.good()) ADD_FAILURE() << "could not write " << path;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

std::string random_text(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, 'x');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

std::string make_layer_tar(const std::filesystem::path& root, const std::string& name,
                           const std::string& content) {
  std::filesystem::path tree = root / name;
  write_file(tree / "data" / name, content);
  std::filesystem::path tar = root / (name + ".tar");
  std::string command = "tar --mtime=@1700000000 --owner=0 --group=0 -C " + tree.string() +
                        " -cf " + tar.string() + " .";
  EXPECT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(tar, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace deltasync::testing
