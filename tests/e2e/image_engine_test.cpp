// The image code against a real dockerd (the private "sender" test engine):
// DockerArchiveWriter output is accepted by `docker load` (POST /images/load)
// as the same image, and open_image() of an engine reference reads it back
// through the engine's own `docker save` export (GET /images/{name}/get),
// including the symlink docker writes for a layer that occurs twice.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;

class ImageEngineTest : public testing::EngineTest {};

TEST_F(ImageEngineTest, WriterOutputLoadsAndReadsBackThroughTheEngine) {
  auto dir = TempDir::create(default_temp_parent(), "image-engine-test-");
  ASSERT_TRUE(dir.has_value()) << dir.error().message();
  std::vector<std::string> tars = {
      testing::make_layer_tar(dir->path(), "one", std::string(70000, 'a')),
      testing::make_layer_tar(dir->path(), "two", "second layer\n")};
  tars.push_back(tars[0]);  // a repeated layer: docker save links it
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const auto& t : tars) diff_ids.push_back(Digest::of(t).str());
  std::string config = nlohmann::json({{"architecture", "amd64"},
                                       {"os", "linux"},
                                       {"config", {{"Cmd", {"/bin/true"}}}},
                                       {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}})
                           .dump();
  const std::string tag = "deltasync-image-test:1";

  StringSink archive;
  DockerArchiveWriter writer(archive, config, {tag});
  for (const auto& t : tars) {
    MemorySource content(t);
    auto added = writer.add_layer(Digest::of(t), t.size(), content);
    ASSERT_TRUE(added.has_value()) << added.error().message();
  }
  ASSERT_TRUE(writer.finish().has_value());

  EngineClient engine(EngineOptions{sender_engine()});
  MemorySource archive_source(archive.data());
  auto loaded = engine.load_image(archive_source);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();

  auto ref = ImageRef::parse(tag);
  ASSERT_TRUE(ref.has_value());
  auto reader = open_image(*ref, &engine);
  ASSERT_TRUE(reader.has_value()) << reader.error().message();
  const ImageInfo& info = (*reader)->info();
  EXPECT_EQ(info.image_id, Digest::of(config));
  EXPECT_EQ(info.config_bytes, config);
  EXPECT_EQ(info.tags, std::vector<std::string>{tag});
  ASSERT_EQ(info.layers.size(), tars.size());
  for (size_t i = 0; i < tars.size(); ++i) {
    EXPECT_EQ(info.layers[i].diff_id, Digest::of(tars[i]));
    auto layer = (*reader)->open_layer(i);
    ASSERT_TRUE(layer.has_value()) << layer.error().message();
    StringSink content;
    auto copied = copy_all(**layer, content);
    ASSERT_TRUE(copied.has_value()) << copied.error().message();
    EXPECT_EQ(content.data(), tars[i]) << "layer " << i;
  }
  reader->reset();
  EXPECT_TRUE(engine.remove_image(tag, /*force=*/true).has_value());
}

TEST_F(ImageEngineTest, MissingImageIsNotFound) {
  EngineClient engine(EngineOptions{sender_engine()});
  auto ref = ImageRef::parse("deltasync-no-such-image:404");
  ASSERT_TRUE(ref.has_value());
  auto reader = open_image(*ref, &engine);
  ASSERT_FALSE(reader.has_value());
  EXPECT_EQ(reader.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(reader.error().message().find("deltasync-no-such-image:404"), std::string::npos)
      << reader.error().message();
}

}  // namespace
}  // namespace deltasync
