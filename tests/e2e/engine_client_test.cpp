// EngineClient against real private dockerd instances (CTest fixture
// "engines"): ping/version, import -> inspect -> list -> streamed export ->
// remove -> streamed load -> same image ID, tagging with registry-style
// names, transfer between the two engines, and the error paths (missing
// image, dead socket, garbage archive, an engine that never answers).
//
// Fixture images are made with GNU tar and the docker CLI (tests only);
// every test uses its own image names, so the cases may run in parallel.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/engine/engine_client.h"
#include "common/io/file.h"
#include "tests/support/test_engines.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::EngineTest;
using testing::run_command;

class EngineClientTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "ds-engine-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    temp_.emplace(std::move(*dir));
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info->name();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    repo_ = "ds-engine-test/" + name;
  }

  void TearDown() override {
    // Best effort: leave the shared engine as we found it.
    for (const auto& ref : created_) {
      (void)testing::remove_image_cli(sender_engine(), ref);
      (void)testing::remove_image_cli(receiver_engine(), ref);
    }
  }

  fs::path dir() const { return temp_->path(); }

  // Writes a small root file system and returns a tar of it made by GNU tar.
  fs::path make_rootfs_tar(const std::string& label, size_t random_bytes = 0) {
    fs::path root = dir() / ("rootfs-" + label);
    fs::create_directories(root / "etc");
    fs::create_directories(root / "app");
    std::ofstream(root / "etc" / "hello") << "hello from " << label << "\n";
    std::ofstream(root / "app" / "config.json") << R"({"label":")" << label << "\"}\n";
    if (random_bytes > 0) {
      std::mt19937_64 rng(42);
      std::string data(random_bytes, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      std::ofstream(root / "app" / "blob.bin", std::ios::binary) << data;
    }
    fs::path tar = dir() / ("rootfs-" + label + ".tar");
    CommandResult result = run_command({"tar", "-C", root.string(), "-cf", tar.string(), "."});
    EXPECT_TRUE(result.ok()) << result.error_output;
    return tar;
  }

  // Imports a tar into `engine` as `ref`; returns the image ID.
  std::string import(const std::string& engine, const fs::path& tar, const std::string& ref) {
    auto id = testing::import_image(engine, tar, ref);
    EXPECT_TRUE(id) << id.error().message();
    created_.push_back(ref);
    return id ? *id : std::string();
  }

  void remember(const std::string& ref) { created_.push_back(ref); }

  std::string repo_;

 private:
  std::optional<TempDir> temp_;
  std::vector<std::string> created_;
};

bool contains(const std::vector<std::string>& items, const std::string& wanted) {
  return std::find(items.begin(), items.end(), wanted) != items.end();
}

bool message_has(const Error& error, const std::string& part) {
  return error.message().find(part) != std::string::npos;
}

TEST_F(EngineClientTest, PingAndVersion) {
  EngineClient client(EngineOptions{.address = sender_engine()});
  auto ping = client.ping();
  ASSERT_TRUE(ping) << ping.error().message();
  auto version = client.version();
  ASSERT_TRUE(version) << version.error().message();
  EXPECT_FALSE(version->version.empty());
  EXPECT_FALSE(version->api_version.empty());
  EXPECT_EQ(version->os, "linux");
  EXPECT_FALSE(version->arch.empty());
  // The receiver engine is a different daemon that answers too.
  EngineClient receiver(EngineOptions{.address = receiver_engine()});
  EXPECT_TRUE(receiver.ping());
}

TEST_F(EngineClientTest, ImportInspectListExportRemoveLoad) {
  const std::string ref = repo_ + ":1.0";
  std::string id = import(sender_engine(), make_rootfs_tar("a"), ref);
  ASSERT_FALSE(id.empty());
  EngineClient client(EngineOptions{.address = sender_engine()});

  auto detail = client.inspect_image(ref);
  ASSERT_TRUE(detail) << detail.error().message();
  EXPECT_EQ(detail->id, id);
  EXPECT_TRUE(contains(detail->repo_tags, ref));
  ASSERT_EQ(detail->diff_ids.size(), 1u);
  EXPECT_TRUE(detail->diff_ids[0].starts_with("sha256:"));
  EXPECT_EQ(detail->os, "linux");
  EXPECT_FALSE(detail->architecture.empty());
  EXPECT_GT(detail->size, 0);
  // By ID as well as by name.
  auto by_id = client.inspect_image(id);
  ASSERT_TRUE(by_id) << by_id.error().message();
  EXPECT_EQ(by_id->id, id);

  auto images = client.list_images();
  ASSERT_TRUE(images) << images.error().message();
  auto listed = std::find_if(images->begin(), images->end(),
                             [&](const EngineImageSummary& s) { return s.id == id; });
  ASSERT_NE(listed, images->end());
  EXPECT_TRUE(contains(listed->repo_tags, ref));
  EXPECT_GT(listed->created, 0);

  // Export into a file, then check it is a tar with manifest.json.
  fs::path archive = dir() / "exported.tar";
  {
    auto file = AtomicFile::create(archive);
    ASSERT_TRUE(file) << file.error().message();
    TeeCountSink counted(**file);
    auto exported = client.export_image(ref, counted);
    ASSERT_TRUE(exported) << exported.error().message();
    EXPECT_GT(counted.count(), 1024u);
    ASSERT_TRUE((*file)->publish());
  }
  CommandResult listing = run_command({"tar", "-tf", archive.string()});
  ASSERT_TRUE(listing.ok()) << listing.error_output;
  EXPECT_NE(listing.output.find("manifest.json"), std::string::npos) << listing.output;

  auto removed = client.remove_image(ref, /*force=*/true);
  ASSERT_TRUE(removed) << removed.error().message();
  auto gone = client.inspect_image(ref);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);

  auto source = open_file_source(archive);
  ASSERT_TRUE(source) << source.error().message();
  auto loaded = client.load_image(**source);
  ASSERT_TRUE(loaded) << loaded.error().message();
  bool saw_loaded = std::any_of(loaded->begin(), loaded->end(), [&](const std::string& m) {
    return m.find("Loaded image") != std::string::npos && m.find(ref) != std::string::npos;
  });
  EXPECT_TRUE(saw_loaded) << ::testing::PrintToString(*loaded);
  auto again = client.inspect_image(ref);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->id, id);
  EXPECT_EQ(again->diff_ids, detail->diff_ids);
}

TEST_F(EngineClientTest, TagAndInspectViaNewTag) {
  const std::string ref = repo_ + ":1";
  std::string id = import(sender_engine(), make_rootfs_tar("t"), ref);
  ASSERT_FALSE(id.empty());
  EngineClient client(EngineOptions{.address = sender_engine()});

  for (const std::string& target : std::vector<std::string>{
           "localhost:5000/" + repo_ + ":2.0.0", "localhost:5000/" + repo_, repo_ + ":other"}) {
    remember(target);
    auto tagged = client.tag_image(ref, target);
    ASSERT_TRUE(tagged) << target << ": " << tagged.error().message();
    std::string expected_tag =
        target.find(':', target.rfind('/')) == std::string::npos ? target + ":latest" : target;
    auto detail = client.inspect_image(expected_tag);
    ASSERT_TRUE(detail) << detail.error().message();
    EXPECT_EQ(detail->id, id);
    EXPECT_TRUE(contains(detail->repo_tags, expected_tag))
        << ::testing::PrintToString(detail->repo_tags);
  }
  // Tagging by image ID works too.
  remember(repo_ + ":by-id");
  ASSERT_TRUE(client.tag_image(id, repo_ + ":by-id"));
  auto by_id = client.inspect_image(repo_ + ":by-id");
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->id, id);

  auto bad = client.tag_image(ref, "app@sha256:0123");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(EngineClientTest, MissingImageIsNotFound) {
  EngineClient client(EngineOptions{.address = sender_engine()});
  const std::string missing = "app:2.0.0-missing-" + repo_.substr(repo_.find('/') + 1);

  auto inspected = client.inspect_image(missing);
  ASSERT_FALSE(inspected);
  EXPECT_EQ(inspected.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(message_has(inspected.error(),
                          "no such image " + missing + " in the engine at " + sender_engine()))
      << inspected.error().message();

  StringSink sink;
  auto exported = client.export_image(missing, sink);
  ASSERT_FALSE(exported);
  EXPECT_EQ(exported.error().code(), ErrorCode::kNotFound) << exported.error().message();
  EXPECT_TRUE(message_has(exported.error(), missing));
  EXPECT_TRUE(sink.data().empty());

  auto removed = client.remove_image(missing, true);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code(), ErrorCode::kNotFound);

  auto tagged = client.tag_image(missing, "elsewhere:1");
  ASSERT_FALSE(tagged);
  EXPECT_EQ(tagged.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(message_has(tagged.error(), missing));
}

TEST_F(EngineClientTest, DeadSocketIsUnavailable) {
  // No file at all.
  const std::string nowhere = "unix://" + (dir() / "nowhere.sock").string();
  EngineClient client(EngineOptions{.address = nowhere});
  auto ping = client.ping();
  ASSERT_FALSE(ping);
  EXPECT_EQ(ping.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(message_has(ping.error(), "cannot reach the engine at " + nowhere + ": "))
      << ping.error().message();
  EXPECT_TRUE(message_has(ping.error(), "is dockerd running?")) << ping.error().message();
  auto inspected = client.inspect_image("app:1");
  ASSERT_FALSE(inspected);
  EXPECT_EQ(inspected.error().code(), ErrorCode::kUnavailable);

  // A socket file nobody listens on (a daemon that died): connection refused.
  fs::path dead = dir() / "dead.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, dead.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  EngineClient dead_client(EngineOptions{.address = "unix://" + dead.string()});
  auto version = dead_client.version();
  ASSERT_FALSE(version);
  EXPECT_EQ(version.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(message_has(version.error(), "unix://" + dead.string())) << version.error().message();
}

TEST_F(EngineClientTest, GarbageArchiveIsEngineError) {
  EngineClient client(EngineOptions{.address = sender_engine()});
  std::string small = "this is not a tar archive\n";
  MemorySource small_source(small);
  auto loaded = client.load_image(small_source);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), ErrorCode::kEngine) << loaded.error().message();
  EXPECT_TRUE(message_has(loaded.error(), sender_engine())) << loaded.error().message();

  // Several MiB of noise: the engine may give up before reading it all.
  std::mt19937_64 rng(7);
  std::string big(8 << 20, '\0');
  for (auto& c : big) c = static_cast<char>(rng());
  MemorySource big_source(big);
  auto big_loaded = client.load_image(big_source);
  ASSERT_FALSE(big_loaded);
  EXPECT_TRUE(big_loaded.error().code() == ErrorCode::kEngine ||
              big_loaded.error().code() == ErrorCode::kUnavailable)
      << big_loaded.error().message();

  // The engine is still fine afterwards.
  EXPECT_TRUE(client.ping());
}

TEST_F(EngineClientTest, StreamsALargerImageBetweenEngines) {
  // A 24 MiB incompressible layer, built on an imported base with the classic
  // builder, moved sender -> receiver through export_image/load_image.
  const std::string base = repo_ + "-base:1";
  ASSERT_FALSE(import(sender_engine(), make_rootfs_tar("base"), base).empty());
  fs::path context = dir() / "context";
  fs::create_directories(context);
  {
    std::mt19937_64 rng(99);
    std::string data(24 << 20, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    std::ofstream(context / "payload.bin", std::ios::binary) << data;
    std::ofstream(context / "Dockerfile") << "FROM " << base << "\nCOPY payload.bin /payload.bin\n";
  }
  const std::string ref = repo_ + ":2.0.0";
  remember(ref);
  auto built = testing::build_image(sender_engine(), context, ref);
  ASSERT_TRUE(built) << built.error().message();

  EngineClient sender(EngineOptions{.address = sender_engine()});
  EngineClient receiver(EngineOptions{.address = receiver_engine()});
  auto detail = sender.inspect_image(ref);
  ASSERT_TRUE(detail) << detail.error().message();
  EXPECT_EQ(detail->id, *built);
  EXPECT_EQ(detail->diff_ids.size(), 2u);

  fs::path archive = dir() / "big.tar";
  {
    auto file = AtomicFile::create(archive);
    ASSERT_TRUE(file);
    TeeCountSink counted(**file);
    auto exported = sender.export_image(ref, counted);
    ASSERT_TRUE(exported) << exported.error().message();
    EXPECT_GT(counted.count(), 24u << 20);
    ASSERT_TRUE((*file)->publish());
  }
  auto source = open_file_source(archive);
  ASSERT_TRUE(source);
  auto loaded = receiver.load_image(**source);
  ASSERT_TRUE(loaded) << loaded.error().message();
  auto on_receiver = receiver.inspect_image(ref);
  ASSERT_TRUE(on_receiver) << on_receiver.error().message();
  EXPECT_EQ(on_receiver->id, detail->id);
  EXPECT_EQ(on_receiver->diff_ids, detail->diff_ids);
}

TEST_F(EngineClientTest, SilentEngineTimesOut) {
  // A socket that accepts connections but never answers.
  fs::path path = dir() / "silent.sock";
  int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);

  EngineClient client(
      EngineOptions{.address = "unix://" + path.string(), .io_timeout = std::chrono::seconds(1)});
  auto start = std::chrono::steady_clock::now();
  auto ping = client.ping();
  auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(listener);
  ASSERT_FALSE(ping);
  EXPECT_EQ(ping.error().code(), ErrorCode::kTimeout) << ping.error().message();
  EXPECT_TRUE(message_has(ping.error(), "unix://" + path.string()));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

}  // namespace
}  // namespace deltasync
