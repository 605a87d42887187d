// The sender's layer cache (sender/cache/sender_layer_cache.h) on a real
// directory with tars made by GNU tar: a chain is a basis only when every
// layer is there and still hashes to its diff_id; what was kept comes back
// with its config; one run at a time holds the cache.
#include "sender/cache/sender_layer_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "common/index/layer_index.h"
#include "common/io/file.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;

class SenderLayerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "sender-cache-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
  }

  struct Layer {
    UniqueFd fd;
    LayerIndex index;
  };
  // A layer tar of a few files (GNU tar), opened and indexed as a
  // workspace would hold it.
  Layer make_layer(unsigned seed) {
    fs::path tree = temp_->path() / ("tree-" + std::to_string(seed));
    testing::write_file(tree / "etc" / "conf", testing::random_text(500, seed));
    testing::write_file(tree / "bin" / "tool", testing::random_bytes(64 << 10, seed));
    fs::path tar = temp_->path() / ("layer-" + std::to_string(seed) + ".tar");
    EXPECT_EQ(testing::run_shell("tar -C " + tree.string() + " -cf " + tar.string() + " etc bin"),
              0);
    auto bytes = read_small_file(tar, 16 << 20);
    EXPECT_TRUE(bytes);
    Layer layer;
    auto source = open_file_source(tar);
    EXPECT_TRUE(source);
    auto index = build_layer_index(**source, Digest::of(*bytes), "test layer");
    EXPECT_TRUE(index) << index.error().message();
    layer.index = std::move(*index);
    layer.fd = UniqueFd(::open(tar.c_str(), O_RDONLY | O_CLOEXEC));
    return layer;
  }

  fs::path cache_dir() const { return temp_->path() / "cache"; }
  std::optional<TempDir> temp_;
};

TEST_F(SenderLayerCacheTest, AKeptChainComesBackVerifiedWithItsConfig) {
  Layer base = make_layer(1), app = make_layer(2), other = make_layer(3);
  const std::string config = R"({"rootfs":{"type":"layers"}})";
  const Digest image_id = Digest::of(config);
  {
    auto cache = SenderLayerCache::open(cache_dir(), 1 << 30);
    ASSERT_TRUE(cache) << cache.error().message();
    ASSERT_TRUE((*cache)->keep_layer(base.fd.get(), base.index));
    ASSERT_TRUE((*cache)->keep_layer(app.fd.get(), app.index));
    ASSERT_TRUE((*cache)->keep_config(image_id, config));
    EXPECT_EQ((*cache)->keep_stats().layers_linked + (*cache)->keep_stats().layers_copied, 2u);
  }
  // A later run (the cache is closed and opened again, as by a new process).
  auto cache = SenderLayerCache::open(cache_dir(), 1 << 30);
  ASSERT_TRUE(cache);
  auto chain = (*cache)->open_chain({base.index.diff_id, app.index.diff_id}, image_id.str());
  ASSERT_TRUE(chain);
  ASSERT_EQ(chain->layers.size(), 2u);
  EXPECT_EQ(chain->layers[1].index->diff_id, app.index.diff_id);
  EXPECT_EQ(chain->layers[1].index->entries.size(), app.index.entries.size());
  EXPECT_EQ(chain->config_bytes, config);
  // One layer of the chain missing: no basis (not half of one).
  EXPECT_FALSE((*cache)->open_chain({base.index.diff_id, other.index.diff_id}, image_id.str()));
  // Unknown config: the layers still serve, without it.
  auto no_config = (*cache)->open_chain({base.index.diff_id}, Digest::of("other").str());
  ASSERT_TRUE(no_config);
  EXPECT_TRUE(no_config->config_bytes.empty());
}

TEST_F(SenderLayerCacheTest, ADamagedLayerIsNoBasisAndIsRemoved) {
  Layer base = make_layer(1), app = make_layer(2);
  auto cache = SenderLayerCache::open(cache_dir(), 1 << 30);
  ASSERT_TRUE(cache);
  ASSERT_TRUE((*cache)->keep_layer(base.fd.get(), base.index));
  ASSERT_TRUE((*cache)->keep_layer(app.fd.get(), app.index));
  // Truncated (a full disk, a partial restore of a CI cache). The stored
  // file is a hard link of the test's own tar, which is cut too: no matter.
  fs::path stored = cache_dir() / "layers" / "layers" / (app.index.diff_id.hex() + ".tar");
  ASSERT_TRUE(fs::exists(stored));
  fs::resize_file(stored, app.index.tar_size - 700);
  EXPECT_FALSE((*cache)->open_chain({base.index.diff_id, app.index.diff_id}, ""));
  EXPECT_FALSE(fs::exists(stored)) << "the damaged layer is removed";
  EXPECT_TRUE((*cache)->open_chain({base.index.diff_id}, "")) << "the intact one still serves";
}

TEST_F(SenderLayerCacheTest, OneRunAtATimeTheSecondIsToldWhy) {
  auto first = SenderLayerCache::open(cache_dir(), 1 << 30);
  ASSERT_TRUE(first);
  auto second = SenderLayerCache::open(cache_dir(), 1 << 30);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("another deltasend run"), std::string::npos)
      << second.error().message();
  first->reset();
  EXPECT_TRUE(SenderLayerCache::open(cache_dir(), 1 << 30)) << "free again once the first ends";
}

TEST_F(SenderLayerCacheTest, TheBudgetEvictsTheLeastRecentlyUsed) {
  Layer old_layer = make_layer(1), used = make_layer(2), added = make_layer(3);
  auto cache = SenderLayerCache::open(cache_dir(), 1 << 30);
  ASSERT_TRUE(cache);
  for (Layer* l : {&old_layer, &used}) ASSERT_TRUE((*cache)->keep_layer(l->fd.get(), l->index));
  auto past = fs::file_time_type::clock::now() - std::chrono::hours(2);
  for (Layer* l : {&old_layer, &used})
    fs::last_write_time(cache_dir() / "layers" / "layers" / (l->index.diff_id.hex() + ".tar"),
                        past + std::chrono::minutes(l == &used ? 1 : 0));
  // `used` serves as a basis (a use), then `added` comes in.
  ASSERT_TRUE((*cache)->open_chain({used.index.diff_id}, ""));
  ASSERT_TRUE((*cache)->keep_layer(added.fd.get(), added.index));
  cache->reset();
  // Room for two layers and their indexes, not three.
  uint64_t room = 2 * (used.index.tar_size + (8 << 10));
  auto small = SenderLayerCache::open(cache_dir(), room);
  ASSERT_TRUE(small);
  ASSERT_TRUE((*small)->enforce_budget());
  EXPECT_FALSE((*small)->store().has(old_layer.index.diff_id)) << "least recently used: evicted";
  EXPECT_TRUE((*small)->store().has(used.index.diff_id));
  EXPECT_TRUE((*small)->store().has(added.index.diff_id));
}

}  // namespace
}  // namespace deltasync
