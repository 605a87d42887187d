// TarStreamReader against archives made by GNU tar: long names (GNU 'L' and
// PAX), payloads read or skipped, truncation and bad checksums named.
#include "common/tar/tar_stream_reader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/io/file.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::run_command;

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string make_archive(const fs::path& dir, const std::string& format) {
  fs::create_directories(dir / "src" / std::string(120, 'd'));
  std::ofstream(dir / "src" / "index.json") << R"({"a":1})";
  std::ofstream(dir / "src" / std::string(120, 'd') / "blob") << std::string(5000, 'x');
  std::ofstream(dir / "src" / "z") << "last";
  fs::path out = dir / (format + ".tar");
  auto made = run_command({"tar", "--format=" + format, "-C", (dir / "src").string(), "-cf",
                           out.string(), "index.json", std::string(120, 'd'), "z"});
  EXPECT_TRUE(made.ok()) << made.error_output;
  return read_whole(out);
}

struct Member {
  std::string path;
  std::string payload;
};

Result<std::vector<Member>> members(std::string_view archive, bool read_payloads) {
  MemorySource source(archive);
  TarStreamReader reader(source, "test archive");
  std::vector<Member> out;
  for (;;) {
    DS_ASSIGN_OR_RETURN(auto entry, reader.next());
    if (!entry) return out;
    Member m{entry->normalized_path(), ""};
    if (read_payloads && entry->path.ends_with("blob") == false) {
      DS_ASSIGN_OR_RETURN(m.payload, read_all(reader.payload(), 1 << 20));
    }
    out.push_back(std::move(m));
  }
}

TEST(TarStreamReader, ReadsGnuAndPaxArchivesInOrder) {
  auto dir = TempDir::create(default_temp_parent(), "tar-stream-");
  ASSERT_TRUE(dir);
  for (const char* format : {"gnu", "pax"}) {
    std::string archive = make_archive(dir->path() / format, format);
    for (bool read_payloads : {true, false}) {
      auto got = members(archive, read_payloads);
      ASSERT_TRUE(got) << format << ": " << got.error().message();
      std::vector<std::string> paths;
      for (const auto& m : *got) paths.push_back(m.path);
      const std::string d(120, 'd');
      EXPECT_EQ(paths, (std::vector<std::string>{"index.json", d, d + "/blob", "z"})) << format;
      if (read_payloads) {
        EXPECT_EQ((*got)[0].payload, R"({"a":1})");
        EXPECT_EQ((*got)[3].payload, "last") << "a skipped payload moves the reader on";
      }
    }
  }
}

TEST(TarStreamReader, TruncatedAndDamagedArchivesAreNamed) {
  auto dir = TempDir::create(default_temp_parent(), "tar-stream-");
  ASSERT_TRUE(dir);
  std::string archive = make_archive(dir->path(), "gnu");
  // In a header, in index.json's payload, in the blob's payload.
  const size_t in_blob = archive.find(std::string(100, 'x')) + 100;
  for (size_t cut : {size_t{100}, size_t{512 + 3}, in_blob}) {
    auto got = members(std::string_view(archive).substr(0, cut), true);
    ASSERT_FALSE(got) << "cut at " << cut;
    EXPECT_EQ(got.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(got.error().message().find("test archive"), std::string::npos)
        << got.error().message();
  }
  std::string damaged = archive;
  damaged[10] ^= 0x20;  // inside the first header's name: the checksum no longer holds
  auto got = members(damaged, true);
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("checksum"), std::string::npos) << got.error().message();
}

}  // namespace
}  // namespace deltasync
