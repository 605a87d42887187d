// The receiver's store on a real directory: eviction within the budget
// (least recently used first, pinned layers kept) and the cleanup of partial
// transfers nobody resumed (common/store/layer_store.h); the sender's use of
// it: verified files brought in by hard link, and opened verified, so a file
// damaged on disk afterwards is found and removed.
#include "common/store/layer_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include "common/crypto/digest.h"
#include "common/io/file.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;

class LayerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "layer-store-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
  }

  // A file of `bytes` moved in as a layer (content-addressed by its hash).
  Digest add_layer(LayerStore& store, size_t bytes, unsigned seed) {
    std::string content = testing::random_bytes(bytes, seed);
    fs::path file = temp_->path() / ("in-" + std::to_string(seed));
    testing::write_file(file, content);
    Digest d = Digest::of(content);
    EXPECT_TRUE(store.adopt_rebuilt(d, file));
    return d;
  }

  // A partial transfer of `image` holding `bytes`, last written `age` ago.
  void add_partial(LayerStore& store, const Digest& image, size_t bytes, hours age) {
    Digest layer = Digest::of("layer of " + image.hex());
    fs::path file = store.partial_file(image, layer);
    fs::create_directories(file.parent_path());
    testing::write_file(file, std::string(bytes, 'p'));
    ASSERT_TRUE(store.write_checkpoint(image, layer, LayerCheckpoint{1, bytes}));
    auto when = fs::file_time_type::clock::now() - age;
    for (const auto& entry : fs::directory_iterator(file.parent_path()))
      fs::last_write_time(entry.path(), when);
    fs::last_write_time(file.parent_path(), when);
  }

  bool has_partial(const LayerStore& store, const Digest& image) const {
    return fs::exists(store.root() / "partial" / image.hex());
  }

  void age_layer(const LayerStore& store, const Digest& d, hours age) {
    fs::last_write_time(store.root() / "layers" / (d.hex() + ".tar"),
                        fs::file_time_type::clock::now() - age);
  }

  // A real layer tar made by GNU tar, opened, with its digest and index.
  struct TarFile {
    fs::path path;
    UniqueFd fd;
    Digest diff_id;
    LayerIndex index;
  };
  TarFile make_tar(unsigned seed) {
    TarFile tar;
    fs::path tree = temp_->path() / ("tree-" + std::to_string(seed));
    testing::write_file(tree / "app" / "data.bin", testing::random_bytes(256 << 10, seed));
    testing::write_file(tree / "app" / "note.txt", testing::random_text(3000, seed));
    tar.path = temp_->path() / ("layer-" + std::to_string(seed) + ".tar");
    EXPECT_EQ(testing::run_shell("tar -C " + tree.string() + " -cf " + tar.path.string() + " app"),
              0);
    auto content = read_small_file(tar.path, 16 << 20);
    EXPECT_TRUE(content);
    tar.diff_id = Digest::of(*content);
    auto source = open_file_source(tar.path);
    EXPECT_TRUE(source);
    auto index = build_layer_index(**source, tar.diff_id, "test layer");
    EXPECT_TRUE(index) << index.error().message();
    tar.index = std::move(*index);
    tar.fd = UniqueFd(::open(tar.path.c_str(), O_RDWR | O_CLOEXEC));
    return tar;
  }

  std::optional<TempDir> temp_;
};

TEST_F(LayerStoreTest, AdoptsAVerifiedFileByHardLinkAndKeepsTheCallersFile) {
  auto store = LayerStore::open(temp_->path() / "store", 1 << 30);
  ASSERT_TRUE(store);
  TarFile tar = make_tar(1);
  auto how = (*store)->adopt_verified(tar.diff_id, tar.fd.get(), tar.index);
  ASSERT_TRUE(how) << how.error().message();
  EXPECT_EQ(*how, LayerStore::AdoptHow::kLinked) << "same file system: no copy";
  struct stat caller {
  }, stored{};
  ASSERT_EQ(::stat(tar.path.c_str(), &caller), 0);
  ASSERT_EQ(::stat(((*store)->root() / "layers" / (tar.diff_id.hex() + ".tar")).c_str(), &stored),
            0);
  EXPECT_EQ(caller.st_ino, stored.st_ino);
  EXPECT_EQ(caller.st_nlink, 2u);
  EXPECT_TRUE((*store)->has(tar.diff_id));
  auto again = (*store)->adopt_verified(tar.diff_id, tar.fd.get(), tar.index);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, LayerStore::AdoptHow::kAlreadyHeld);
  // The caller's file may go (a workspace is removed): the store keeps its link.
  tar.fd.reset();
  fs::remove(tar.path);
  auto opened = (*store)->open_layer_verified(tar.diff_id);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->index->entries.size(), tar.index.entries.size());
  EXPECT_EQ(opened->size, tar.index.tar_size);
}

TEST_F(LayerStoreTest, RefusesAnIndexOfAnotherLayer) {
  auto store = LayerStore::open(temp_->path() / "store", 1 << 30);
  ASSERT_TRUE(store);
  TarFile one = make_tar(1);
  TarFile two = make_tar(2);
  auto how = (*store)->adopt_verified(one.diff_id, one.fd.get(), two.index);
  EXPECT_FALSE(how);
  EXPECT_FALSE((*store)->has(one.diff_id));
}

TEST_F(LayerStoreTest, OpenVerifiedFindsAndRemovesAFileDamagedAfterItCameIn) {
  auto store = LayerStore::open(temp_->path() / "store", 1 << 30);
  ASSERT_TRUE(store);
  TarFile flipped = make_tar(1);
  TarFile truncated = make_tar(2);
  for (TarFile* tar : {&flipped, &truncated}) {
    auto how = (*store)->adopt_verified(tar->diff_id, tar->fd.get(), tar->index);
    ASSERT_TRUE(how) << how.error().message();
  }
  // One bit in a file's payload (the tar still parses; the .idx is intact).
  fs::path flipped_path = (*store)->root() / "layers" / (flipped.diff_id.hex() + ".tar");
  {
    UniqueFd fd(::open(flipped_path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_GE(fd.get(), 0);
    char byte = 0;
    ASSERT_EQ(::pread(fd.get(), &byte, 1, 100000), 1);
    byte ^= 1;
    ASSERT_EQ(::pwrite(fd.get(), &byte, 1, 100000), 1);
  }
  fs::path truncated_path = (*store)->root() / "layers" / (truncated.diff_id.hex() + ".tar");
  fs::resize_file(truncated_path, fs::file_size(truncated_path) / 2);

  // open_layer trusts the .idx; open_layer_verified does not.
  EXPECT_TRUE((*store)->open_layer(flipped.diff_id)) << "the unverified open does not see it";
  for (TarFile* tar : {&flipped, &truncated}) {
    auto opened = (*store)->open_layer_verified(tar->diff_id);
    ASSERT_FALSE(opened) << "a damaged layer must not be opened as valid";
    EXPECT_NE(opened.error().message().find("damaged"), std::string::npos)
        << opened.error().message();
    EXPECT_FALSE((*store)->has(tar->diff_id)) << "and it is removed";
  }
}

TEST_F(LayerStoreTest, EvictsTheLeastRecentlyUsedUnpinnedLayersFirst) {
  auto store = LayerStore::open(temp_->path() / "store", 3 << 20);
  ASSERT_TRUE(store) << store.error().message();
  Digest oldest = add_layer(**store, 1 << 20, 1);
  Digest pinned = add_layer(**store, 1 << 20, 2);
  Digest middle = add_layer(**store, 1 << 20, 3);
  Digest newest = add_layer(**store, 1 << 20, 4);
  age_layer(**store, oldest, hours(3));
  age_layer(**store, pinned, hours(4));
  age_layer(**store, middle, hours(2));
  (*store)->pin(pinned);
  ASSERT_TRUE((*store)->enforce_budget());
  EXPECT_FALSE((*store)->has(oldest));
  EXPECT_TRUE((*store)->has(pinned)) << "a pinned layer is never evicted";
  EXPECT_TRUE((*store)->has(middle));
  EXPECT_TRUE((*store)->has(newest));
  EXPECT_LE((*store)->bytes_used(), uint64_t{3} << 20);
}

TEST_F(LayerStoreTest, DropsAbandonedPartialTransfersAndKeepsRecentOnes) {
  auto store = LayerStore::open(temp_->path() / "store", uint64_t{1} << 30);
  ASSERT_TRUE(store);
  Digest abandoned = Digest::of("abandoned image");
  Digest recent = Digest::of("recent image");
  add_partial(**store, abandoned, 4096, LayerStore::kAbandonedPartialAge + hours(1));
  add_partial(**store, recent, 4096, hours(30));
  ASSERT_TRUE((*store)->enforce_budget());
  EXPECT_FALSE(has_partial(**store, abandoned)) << "a week without a write: dropped";
  EXPECT_TRUE(has_partial(**store, recent)) << "within the budget, a resumable transfer stays";
  EXPECT_TRUE((*store)->read_checkpoint(recent, Digest::of("layer of " + recent.hex())));
}

TEST_F(LayerStoreTest, OverTheBudgetLayersGoBeforeIdlePartialsAndBusyPartialsStay) {
  auto store = LayerStore::open(temp_->path() / "store", (2 << 20) + (64 << 10));
  ASSERT_TRUE(store);
  Digest layer = add_layer(**store, 1 << 20, 5);
  Digest idle_old = Digest::of("idle for a day");
  Digest idle_new = Digest::of("idle for two hours");
  Digest busy = Digest::of("written a minute ago");
  add_partial(**store, idle_old, 1 << 20, hours(24));
  add_partial(**store, idle_new, 1 << 20, hours(2));
  add_partial(**store, busy, 1 << 20, hours(0));
  ASSERT_TRUE((*store)->enforce_budget());
  EXPECT_FALSE((*store)->has(layer)) << "layers are evicted first";
  EXPECT_FALSE(has_partial(**store, idle_old)) << "then the oldest idle partial";
  EXPECT_TRUE(has_partial(**store, idle_new)) << "within the budget again: no more goes";
  EXPECT_TRUE(has_partial(**store, busy));
  EXPECT_LE((*store)->bytes_used(), (uint64_t{2} << 20) + (64 << 10));
}

}  // namespace
}  // namespace deltasync
