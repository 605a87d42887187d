// The service's background indexer without an engine: the order in which it
// indexes (tagged, newest first), its share of the store's budget
// (receiver/service/index_plan.h), the Docker event lines it wakes on
// (common/engine/image_events.h), and BasisImports::held on a real store
// (every layer and the config, through the engine-ID link on the
// containerd store).
#include <filesystem>

#include <gtest/gtest.h>

#include "common/engine/image_events.h"
#include "common/io/file.h"
#include "receiver/service/basis_imports.h"
#include "receiver/service/index_plan.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using engine_detail::image_events_target;
using engine_detail::parse_image_event_line;

IndexCandidate candidate(std::string id, bool tagged, int64_t created) {
  IndexCandidate c;
  c.engine_id = std::move(id);
  c.tagged = tagged;
  c.created = created;
  return c;
}

TEST(IndexPlan, TaggedFirstThenNewestFirst) {
  auto ordered =
      index_order({candidate("a", false, 300), candidate("b", true, 100), candidate("c", true, 200),
                   candidate("d", false, 400), candidate("e", true, 200)});
  std::vector<std::string> ids;
  for (const auto& c : ordered) ids.push_back(c.engine_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"c", "e", "b", "d", "a"}));
}

TEST(IndexPlan, ShareOfTheBudget) {
  EXPECT_EQ(index_share_limit(1000, 50), 500u);
  EXPECT_EQ(index_share_limit(1000, 100), 1000u);
  EXPECT_EQ(index_share_limit(1000, 0), 10u);      // clamped to 1%
  EXPECT_EQ(index_share_limit(1000, 250), 1000u);  // clamped to 100%
  EXPECT_EQ(index_share_limit(UINT64_MAX, 100), UINT64_MAX);
  EXPECT_EQ(index_share_limit(199, 50), 99u);
}

TEST(IndexPlan, FitsOnlyWhatLeavesTheShareUnexceeded) {
  const uint64_t mib = 1 << 20;
  // 100 MiB image: about 113.5 MiB with the tar overhead and the margin.
  EXPECT_EQ(index_estimate(100 * mib), 100 * mib + 100 * mib / 8 + mib);
  EXPECT_TRUE(fits_index_share(0, 100 * mib, 200 * mib));
  EXPECT_TRUE(fits_index_share(200 * mib - index_estimate(100 * mib), 100 * mib, 200 * mib));
  EXPECT_FALSE(fits_index_share(200 * mib - index_estimate(100 * mib) + 1, 100 * mib, 200 * mib));
  EXPECT_FALSE(fits_index_share(0, 190 * mib, 200 * mib));
  // A store already beyond the share (sessions filled it): nothing more.
  EXPECT_FALSE(fits_index_share(300 * mib, 0, 200 * mib));
  EXPECT_FALSE(fits_index_share(0, UINT64_MAX / 2, UINT64_MAX / 4));
}

TEST(ImageEvents, ParsesArrivalsAndSkipsTheRest) {
  auto load = parse_image_event_line(
      R"({"status":"load","id":"sha256:ab","Type":"image","Action":"load",)"
      R"("Actor":{"ID":"sha256:ab","Attributes":{"name":"sha256:ab"}},"scope":"local",)"
      R"("time":1700000000,"timeNano":1700000000123456789})");
  ASSERT_TRUE(load);
  EXPECT_EQ(load->action, "load");
  EXPECT_EQ(load->actor, "sha256:ab");
  EXPECT_EQ(load->time_ns, 1700000000123456789);
  auto tag =
      parse_image_event_line(R"({"Type":"image","Action":"tag","Actor":{"ID":"app:2"},"time":5})");
  ASSERT_TRUE(tag);
  EXPECT_EQ(tag->time_ns, 5'000'000'000);
  // Older form, status only.
  EXPECT_TRUE(parse_image_event_line(R"({"status":"pull","id":"app:1","time":1})"));
  EXPECT_FALSE(parse_image_event_line(R"({"Type":"image","Action":"delete","Actor":{"ID":"x"}})"));
  EXPECT_FALSE(parse_image_event_line(R"({"Type":"image","Action":"untag","Actor":{"ID":"x"}})"));
  EXPECT_FALSE(parse_image_event_line(R"({"Type":"container","Action":"load"})"));
  EXPECT_FALSE(parse_image_event_line(""));
  EXPECT_FALSE(parse_image_event_line("  \r"));
  EXPECT_FALSE(parse_image_event_line("not json"));
  EXPECT_FALSE(parse_image_event_line("[1,2]"));
}

TEST(ImageEvents, RequestNamesTheWindowAndTheFilter) {
  EXPECT_EQ(engine_detail::engine_timestamp(1700000000000000001), "1700000000.000000001");
  EXPECT_EQ(engine_detail::engine_timestamp(-5), "0.000000000");
  std::string target = image_events_target(1'000'000'000, 61'500'000'000);
  EXPECT_EQ(target.rfind("/events?since=1.000000000&until=61.500000000&filters=", 0), 0u) << target;
  // {"event":["import","load","pull","tag"],"type":["image"]}, URL-encoded.
  EXPECT_NE(target.find("%22type%22%3A%5B%22image%22%5D"), std::string::npos) << target;
  EXPECT_NE(target.find("%22load%22"), std::string::npos) << target;
  EXPECT_EQ(target.find("%22delete%22"), std::string::npos) << target;
}

class HeldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "engine-index-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    auto store = LayerStore::open(temp_->path() / "store", 1ull << 30);
    ASSERT_TRUE(store);
    store_ = std::move(*store);
  }

  Digest add_layer(unsigned seed) {
    std::string content = testing::random_bytes(4096, seed);
    fs::path file = temp_->path() / ("in-" + std::to_string(seed));
    testing::write_file(file, content);
    Digest d = Digest::of(content);
    EXPECT_TRUE(store_->adopt_rebuilt(d, file));
    return d;
  }

  std::optional<TempDir> temp_;
  std::unique_ptr<LayerStore> store_;
};

TEST_F(HeldTest, NeedsEveryLayerAndTheConfig) {
  std::string config = R"({"rootfs":{"type":"layers"}})";
  Digest config_digest = Digest::of(config);
  Digest a = add_layer(1);
  Digest b = Digest::of("a layer the store lacks");
  EXPECT_FALSE(BasisImports::held(*store_, config_digest.str(), {a}));  // no config yet
  ASSERT_TRUE(store_->write_config(config_digest, config));
  EXPECT_EQ(BasisImports::held(*store_, config_digest.str(), {a}), config_digest);
  EXPECT_FALSE(BasisImports::held(*store_, config_digest.str(), {a, b}));
  EXPECT_FALSE(BasisImports::held(*store_, config_digest.str(), {}));  // chain unknown
  EXPECT_FALSE(BasisImports::held(*store_, "not-a-digest", {a}));
}

TEST_F(HeldTest, ContainerdStoreIdsGoThroughTheLink) {
  std::string config = R"({"rootfs":{"type":"layers","n":2}})";
  Digest config_digest = Digest::of(config);
  Digest manifest = Digest::of("a manifest");
  Digest a = add_layer(2);
  ASSERT_TRUE(store_->write_config(config_digest, config));
  EXPECT_FALSE(BasisImports::held(*store_, manifest.str(), {a}));
  ASSERT_TRUE(store_->link_engine_image(manifest.str(), config_digest));
  EXPECT_EQ(BasisImports::held(*store_, manifest.str(), {a}), config_digest);
}

}  // namespace
}  // namespace deltasync
