// Offline bundles between two real engines: the sender's engine holds
// app:1 and app:2, the receiver's only app:1 (moved there with docker
// save/load). `deltasend bundle` + `deltarecvd apply` must leave the
// receiver with app:2 under the sender's image ID and diff_ids. A
// truncated bundle, a bit flip, and a bundle for a base the site does not
// have must each be refused with a clear message and leave the receiver's
// engine exactly as it was.
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

std::string image_list(const std::string& engine) {
  auto r = run_docker(engine, {"images", "-a", "-q", "--no-trunc"});
  EXPECT_TRUE(r.ok()) << r.error_output;
  return r.output;
}

nlohmann::json inspect(const std::string& engine, const std::string& ref) {
  auto r = run_docker(engine, {"image", "inspect", ref});
  if (!r.ok()) return nullptr;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  return j.is_array() && !j.empty() ? j[0] : nlohmann::json(nullptr);
}

class BundleApplyTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "bundle-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-bundle-e2e-" + std::to_string(::getpid());
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    ASSERT_TRUE(ensure_base_image(receiver_engine()));
    build_pair();
  }

  void build_pair() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 5; ++i)
      write_file(v1 / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(3 << 20, i));
    for (int i = 0; i < 200; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n");
    write_file(v1 / "app" / "small.txt", "small one\n");
    write_file(v1 / "app" / "gone.txt", "removed in 2\n");
    write_file(v1 / "Dockerfile",
               "FROM deltasync-base:busybox\nCOPY app /app\nRUN ln -s large1.bin /app/link && "
               "mkdir /app/tmp && echo x > /app/tmp/x\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    std::string large = random_bytes(3 << 20, 2);
    for (size_t off : {size_t{1000}, size_t{1} << 20, size_t{2} << 20})
      large.replace(off, 5, "EDIT!");
    write_file(v2 / "app" / "large2.bin", large);
    write_file(v2 / "app" / "small.txt", "small one, changed\n");
    write_file(v2 / "app" / "src" / "f7.js", "export const v = 'seven';\n");
    write_file(v2 / "app" / "copy-of-large0.bin",
               random_bytes(3 << 20, 0));  // same content as large0
    fs::remove(v2 / "app" / "gone.txt");
    write_file(v2 / "Dockerfile",
               "FROM deltasync-base:busybox\nCOPY app /app\nRUN ln -s large1.bin /app/link && "
               "mkdir /app/tmp && echo x > /app/tmp/x\n"
               "RUN rm -rf /app/tmp\n");
    auto id1 = build_image(sender_engine(), v1, tag_ + ":1");
    ASSERT_TRUE(id1) << id1.error().message();
    auto id2 = build_image(sender_engine(), v2, tag_ + ":2");
    ASSERT_TRUE(id2) << id2.error().message();
    // The site gets 1 only, the way a site would: docker save | docker load.
    fs::path archive = temp_->path() / "v1.tar";
    auto saved = run_docker(sender_engine(), {"save", "-o", archive.string(), tag_ + ":1"});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
    auto loaded = run_docker(receiver_engine(), {"load", "-i", archive.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
  }

  CommandResult bundle(const std::string& image, const std::string& base, const fs::path& out,
                       const std::string& effort = "default") {
    return run_command({DELTASEND_BINARY, "--engine", sender_engine(), "bundle", image, "--base",
                        base, "-o", out.string(), "--effort", effort, "--json"});
  }
  CommandResult apply(const fs::path& bundle_file) {
    return run_command(
        {DELTARECVD_BINARY, "--engine", receiver_engine(), "apply", bundle_file.string()});
  }

  void TearDown() override {
    for (const auto& engine : {sender_engine(), receiver_engine()}) {
      if (engine.empty()) continue;
      for (const char* v : {":1", ":2"}) remove_image_cli(engine, tag_ + v);
    }
  }

  std::optional<TempDir> temp_;
  std::string tag_;
};

TEST_F(BundleApplyTest, AppliedImageIsBitIdentical) {
  for (const char* effort : {"fast", "default", "max"}) {
    SCOPED_TRACE(effort);
    remove_image_cli(receiver_engine(), tag_ + ":2");
    fs::path file = temp_->path() / (std::string("app-2-") + effort + ".dsb");
    auto made = bundle(tag_ + ":2", tag_ + ":1", file, effort);
    ASSERT_TRUE(made.ok()) << made.error_output;
    auto summary = nlohmann::json::parse(made.output, nullptr, false);
    ASSERT_FALSE(summary.is_discarded()) << made.output;
    uint64_t bundle_bytes = fs::file_size(file);
    EXPECT_EQ(summary["bytes"].get<uint64_t>(), bundle_bytes);
    // 15 MiB of new layer data; the changes are a few edits and a copy.
    EXPECT_LT(bundle_bytes, 64u * 1024) << "bundle is " << bundle_bytes << " bytes";
    EXPECT_GT(summary["missing_layer_bytes"].get<uint64_t>(), 15u << 20);

    auto applied = apply(file);
    ASSERT_TRUE(applied.ok()) << applied.output << applied.error_output;
    auto sent = inspect(sender_engine(), tag_ + ":2");
    auto got = inspect(receiver_engine(), tag_ + ":2");
    ASSERT_FALSE(got.is_null()) << "the receiver has no " << tag_ << ":2";
    // The content identity: config digest (the Id on the classic store) and
    // every diff_id; on the containerd store the Id is our manifest's digest.
    EXPECT_EQ(image_id_of(receiver_engine(), tag_ + ":2"),
              image_id_of(sender_engine(), tag_ + ":2"));
    EXPECT_EQ(got["RootFS"]["Layers"], sent["RootFS"]["Layers"]);
    if (engine_ids_are_config_digests(sender_engine()) &&
        engine_ids_are_config_digests(receiver_engine())) {
      EXPECT_EQ(got["Id"], sent["Id"]);
    }
    // The distribution identity: on the containerd store, BuildKit's blobs
    // rebuilt with forky's Go give the build host's own Id.
    if (test_expects_same_id()) {
      EXPECT_TRUE(summary["same_id_on_containerd_store"].get<bool>()) << made.output;
      EXPECT_EQ(summary["build_host_image_id"], sent["Id"]);
      EXPECT_EQ(got["Id"], sent["Id"]) << applied.output;
    }
  }
}

TEST_F(BundleApplyTest, DamagedBundlesAreRefusedAndLoadNothing) {
  fs::path good = temp_->path() / "good.dsb";
  auto made = bundle(tag_ + ":2", tag_ + ":1", good);
  ASSERT_TRUE(made.ok()) << made.error_output;
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 200u);
  std::string before = image_list(receiver_engine());

  // Truncated at several points, and a bit flipped at several points.
  std::vector<std::pair<std::string, std::string>> cases;
  for (size_t cut : {bytes.size() / 3, bytes.size() - 1, size_t{10}})
    cases.emplace_back("cut", bytes.substr(0, cut));
  for (size_t at : {size_t{20}, bytes.size() / 2, bytes.size() - 40}) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    cases.emplace_back("flip", flipped);
  }
  int n = 0;
  for (const auto& [kind, content] : cases) {
    fs::path bad = temp_->path() / ("bad" + std::to_string(n++) + ".dsb");
    write_file(bad, content);
    auto result = apply(bad);
    EXPECT_FALSE(result.ok()) << kind << " case " << n << " was accepted";
    EXPECT_NE(result.error_output.find("bundle"), std::string::npos) << result.error_output;
    EXPECT_TRUE(result.error_output.find("damaged") != std::string::npos ||
                result.error_output.find("not a deltasync bundle") != std::string::npos)
        << result.error_output;
  }
  EXPECT_EQ(image_list(receiver_engine()), before);
  EXPECT_TRUE(inspect(receiver_engine(), tag_ + ":2").is_null());
}

TEST_F(BundleApplyTest, WrongBaseIsRefusedNamingTheMissingLayers) {
  // A bundle against a base the site does not hold: built on a different base.
  fs::path other = temp_->path() / "other";
  write_file(other / "unrelated.txt", random_bytes(1000, 77));
  write_file(other / "Dockerfile", "FROM deltasync-base:busybox\nCOPY unrelated.txt /u.txt\n");
  std::string other_tag = tag_ + "-other:1";
  auto built = build_image(sender_engine(), other, other_tag);
  ASSERT_TRUE(built) << built.error().message();
  fs::path file = temp_->path() / "wrong-base.dsb";
  auto made = bundle(tag_ + ":2", other_tag, file);
  ASSERT_TRUE(made.ok()) << made.error_output;
  std::string before = image_list(receiver_engine());
  auto result = apply(file);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.error_output.find("holds no image with the base layers"), std::string::npos)
      << result.error_output;
  EXPECT_NE(result.error_output.find("missing 1 of 2 layers"), std::string::npos)
      << result.error_output;
  EXPECT_NE(result.error_output.find(other_tag), std::string::npos) << result.error_output;
  EXPECT_EQ(image_list(receiver_engine()), before);
  remove_image_cli(sender_engine(), other_tag);
}

}  // namespace
}  // namespace deltasync::testing
