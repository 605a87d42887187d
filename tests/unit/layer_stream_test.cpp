// Layer streams without an engine: base and new layers made by GNU tar, coded
// against the base, decoded, and compared byte for byte. Also what the
// coding costs in the cases it is built for (mtime-only rebuilds, small
// edits in large files, insertions) and that hostile streams are refused.
#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include <gtest/gtest.h>

#include "common/delta/block_delta.h"
#include "common/io/file.h"
#include "common/layerstream/layer_stream.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::random_bytes;
using testing::run_shell;
using testing::write_file;

struct IndexedTar {
  UniqueFd fd;
  LayerIndex index;
};

IndexedTar index_tar(const fs::path& tar) {
  auto source = open_file_source(tar);
  EXPECT_TRUE(source);
  HashingSource hashed(**source);
  auto index = build_layer_index(hashed, Digest(), tar.string());
  EXPECT_TRUE(index) << index.error().message();
  index->diff_id = hashed.finish();
  auto fd = open_for_read(tar);
  EXPECT_TRUE(fd);
  return IndexedTar{std::move(*fd), std::move(*index)};
}

class LayerStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "layer-stream-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
  }
  fs::path path(const std::string& name) { return temp_->path() / name; }

  void tar(const fs::path& dir, const fs::path& out) {
    ASSERT_EQ(0, run_shell("tar --format=gnu --sort=name -cf " + out.string() + " -C " +
                           dir.string() + " ."));
  }

  // Encodes `target` against `base`, decodes it, checks the result, returns the stream size.
  uint64_t round_trip(const fs::path& base_tar, const fs::path& target_tar, Effort effort) {
    IndexedTar base = index_tar(base_tar);
    IndexedTar target = index_tar(target_tar);
    std::vector<const LayerIndex*> layers{&base.index};
    Basis basis = Basis::build(layers);
    LayerFiles files{{base.fd.get()}};
    LayerStreamEncoder encoder(basis, files, EncoderOptions{effort, 2});
    StringSink stream;
    LayerStreamStats stats;
    auto encoded = encoder.encode(target.index, target.fd.get(), stream, stats);
    EXPECT_TRUE(encoded) << encoded.error().message();
    stats_ = stats;

    LayerStreamDecoder decoder(basis, files);
    fs::path out = path("rebuilt.tar");
    int fd = ::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    UniqueFd out_fd(fd);
    MemorySource in(stream.data());
    auto decoded = decoder.decode(in, out_fd.get(), "test layer");
    EXPECT_TRUE(decoded) << decoded.error().message();
    if (decoded) {
      EXPECT_EQ(decoded->digest, target.index.diff_id);
      EXPECT_EQ(decoded->size, fs::file_size(target_tar));
    }
    last_stream_ = stream.data();
    return stream.data().size();
  }

  std::optional<TempDir> temp_;
  LayerStreamStats stats_;
  std::string last_stream_;
};

TEST_F(LayerStreamTest, MtimeOnlyRebuildCostsAFewBytesPerFile) {
  fs::path tree = path("tree");
  for (int i = 0; i < 2000; ++i)
    write_file(tree / "src" / ("file" + std::to_string(i) + ".js"), "content " + std::to_string(i));
  ASSERT_EQ(0, run_shell("find " + tree.string() + " -exec touch -h -d @1600000000 {} +"));
  tar(tree, path("old.tar"));
  ASSERT_EQ(0, run_shell("find " + tree.string() + " -exec touch -h -d @1700000000 {} +"));
  tar(tree, path("new.tar"));
  for (Effort effort : {Effort::kFast, Effort::kDefault, Effort::kMax}) {
    uint64_t bytes = round_trip(path("old.tar"), path("new.tar"), effort);
    EXPECT_GE(stats_.headers_coded, stats_.entries - 1);  // all but the root "./"
    std::cout << "mtime-only rebuild of 2000 files, effort " << effort_name(effort) << ": " << bytes
              << " bytes\n";
    EXPECT_EQ(stats_.same_as_basis, 2000u);
    // A few bytes per file at most; zstd usually does much better.
    EXPECT_LT(bytes, 2002u * 3) << "effort " << effort_name(effort);
  }
}

TEST_F(LayerStreamTest, EditsAndInsertionsInLargeFilesBecomeSmallDeltas) {
  fs::path old_tree = path("old"), new_tree = path("new");
  std::string data = random_bytes(6 << 20, 1);
  write_file(old_tree / "data.bin", data);
  write_file(old_tree / "renamed-1.0" / "lib.so", random_bytes(1 << 20, 2));
  write_file(old_tree / "dup-source.bin", random_bytes(300000, 3));
  std::string edited = data;
  for (size_t off : {size_t{100}, size_t{2} << 20, size_t{5} << 20})
    edited.replace(off, 8, "EDITED!!");
  edited.insert(size_t{3} << 20, random_bytes(4096, 4));  // an insertion shifts the rest
  write_file(new_tree / "data.bin", edited);
  std::string lib = random_bytes(1 << 20, 2);
  lib.replace(5000, 10, "0123456789");
  write_file(new_tree / "renamed-2.0" / "lib.so", lib);          // same name, bumped folder
  write_file(new_tree / "copy.bin", random_bytes(300000, 3));    // same content as a base file
  write_file(new_tree / "twice-a.bin", random_bytes(50000, 9));  // new content, twice
  write_file(new_tree / "twice-b.bin", random_bytes(50000, 9));
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  for (Effort effort : {Effort::kDefault, Effort::kMax}) {
    uint64_t bytes = round_trip(path("old.tar"), path("new.tar"), effort);
    EXPECT_EQ(stats_.delta_files, 2u);
    EXPECT_EQ(stats_.same_as_earlier, 1u);
    // One new 50 KB random file must travel; the rest is a few KiB at most.
    EXPECT_LT(bytes, 50000u + 16 * 1024) << "effort " << effort_name(effort);
  }
}

TEST_F(LayerStreamTest, NoBasisStillRoundTrips) {
  fs::path tree = path("tree");
  write_file(tree / "a.txt", "alpha");
  write_file(tree / "big.bin", random_bytes(1 << 20, 5));
  tar(tree, path("new.tar"));
  fs::path empty_dir = path("empty");
  fs::create_directories(empty_dir);
  tar(empty_dir, path("empty.tar"));
  round_trip(path("empty.tar"), path("new.tar"), Effort::kDefault);
  EXPECT_EQ(stats_.literal_files, 2u);
}

TEST_F(LayerStreamTest, DamagedStreamsAreRefused) {
  fs::path old_tree = path("old"), new_tree = path("new");
  write_file(old_tree / "x.bin", random_bytes(200000, 1));
  std::string x = random_bytes(200000, 1);
  x[1000] ^= 1;
  write_file(new_tree / "x.bin", x);
  write_file(new_tree / "y.txt", "new file");
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  round_trip(path("old.tar"), path("new.tar"), Effort::kDefault);
  std::string good = last_stream_;
  IndexedTar base = index_tar(path("old.tar"));
  std::vector<const LayerIndex*> layers{&base.index};
  Basis basis = Basis::build(layers);
  LayerFiles files{{base.fd.get()}};
  int rejected = 0;
  for (size_t at = 0; at < good.size(); at += std::max<size_t>(1, good.size() / 40)) {
    std::string bad = good;
    bad[at] ^= 0x40;
    LayerStreamDecoder decoder(basis, files);
    int fd = ::open(path("out.tar").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    UniqueFd out(fd);
    MemorySource in(bad);
    auto result = decoder.decode(in, out.get(), "damaged layer");
    // The zstd frame checksum catches what the structure checks do not; a
    // flip in a bit the decoder never uses may decode to the same bytes,
    // which is fine: what must never happen is a different layer.
    if (result) {
      IndexedTar target = index_tar(path("new.tar"));
      EXPECT_EQ(result->digest, target.index.diff_id)
          << "flip at " << at << " gave a different layer";
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 10);
}

TEST(AnchoredDeltaTest, InsertionDeletionAndEditsRoundTripSmall) {
  std::string basis = random_bytes(8 << 20, 11);
  std::string fresh = basis;
  fresh.erase(size_t{1} << 20, 3000);                      // deletion
  fresh.insert(size_t{4} << 20, random_bytes(10000, 12));  // insertion
  fresh[size_t{6} << 20] ^= 1;                             // edit
  MemoryRandomAccess b(basis), n(fresh);
  StringSink delta;
  ASSERT_TRUE(anchored_delta_encode(b, n, AnchoredDeltaParams{}, delta));
  EXPECT_LT(delta.data().size(), 10000u + 8192u);
  MemorySource in(delta.data());
  StringSink out;
  ASSERT_TRUE(anchored_delta_decode(b, in, out, fresh.size()));
  EXPECT_EQ(out.data(), fresh);
  // Refuses to write more than allowed, and a basis too short for its copies.
  MemorySource again(delta.data());
  CountingSink sink;
  EXPECT_FALSE(anchored_delta_decode(b, again, sink, fresh.size() - 1));
  MemoryRandomAccess short_basis(std::string_view(basis).substr(0, 1 << 20));
  MemorySource third(delta.data());
  auto status = anchored_delta_decode(short_basis, third, sink, fresh.size());
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find("outside"), std::string::npos)
      << status.error().message();
}

}  // namespace
}  // namespace deltasync
