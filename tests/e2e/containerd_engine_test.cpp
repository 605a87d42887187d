// The containerd backend against a real containerd (Debian 12's 1.6, the
// CTest fixture "containerd": scripts/test-engine.sh, kind containerd16,
// native snapshotter, address in DELTASYNC_TEST_CONTAINERD_ENGINE). Layers
// are made by GNU tar; what containerd holds afterwards is read with ctr
// (tests/support/ctr_cli.h), not with our client:
//   - a load writes only the blobs the content store lacks (a true partial
//     import), unpacks into the snapshotter, and names the image;
//   - an archive that lacks a blob the store lacks, or carries a blob that
//     is not what its name says, changes nothing and says which blob;
//   - an image is read back (its layers verified) from the content store;
//   - containerd as the build host too: `deltasend bundle` reads both images
//     from the content store, `deltarecvd apply` brings the target back
//     under its own Id (the manifest digest: every blob rebuilt and checked);
//   - the service's background indexer on containerd, which gives no image
//     events here: an image loaded after start-up is indexed by polling.
#include <signal.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "tests/support/ctr_cli.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::ctr_image;
using testing::ctr_unpack_problem;

std::string config_for(const std::vector<std::string>& tars) {
  nlohmann::json diff_ids = nlohmann::json::array();
  for (const auto& t : tars) diff_ids.push_back(Digest::of(t).str());
  return nlohmann::json({{"architecture", "amd64"},
                         {"os", "linux"},
                         {"config", {{"Cmd", {"/bin/true"}}}},
                         {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}})
      .dump();
}

// An OCI layout of `tars` (layers left out where `skip` says), tagged `tag`.
std::string oci_archive(const std::vector<std::string>& tars, const std::string& tag,
                        const std::vector<bool>& skip, Digest* manifest = nullptr,
                        int corrupt_layer = -1) {
  std::vector<OciArchiveWriter::LayerSize> sizes;
  for (const auto& t : tars) sizes.push_back({Digest::of(t), t.size()});
  StringSink out;
  auto writer = OciArchiveWriter::create(out, config_for(tars), sizes, {tag});
  EXPECT_TRUE(writer) << writer.error().message();
  if (!writer) return "";
  if (manifest) *manifest = (*writer)->manifest_digest();
  for (size_t i = 0; i < tars.size(); ++i) {
    if (i < skip.size() && skip[i]) {
      EXPECT_TRUE((*writer)->skip_layer(Digest::of(tars[i])));
      continue;
    }
    MemorySource content(tars[i]);
    EXPECT_TRUE((*writer)->add_layer(Digest::of(tars[i]), tars[i].size(), content));
  }
  EXPECT_TRUE((*writer)->finish());
  std::string bytes = std::move(out.data());
  if (corrupt_layer >= 0) {
    // Flip a byte inside that layer's payload in the archive.
    size_t at = bytes.find(tars[corrupt_layer].substr(1024, 64));
    EXPECT_NE(at, std::string::npos);
    bytes[at] ^= 0x01;
  }
  return bytes;
}

std::string loaded_counts(const std::vector<std::string>& messages) {
  for (const auto& m : messages)
    if (m.starts_with("blobs written")) return m;
  return "";
}

class ContainerdEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::get_engine_from_env("DELTASYNC_TEST_CONTAINERD_ENGINE", &engine_));
    auto dir = TempDir::create(default_temp_parent(), "containerd-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-containerd-" + std::to_string(::getpid());
    // Content of this test only: blobs of other tests stay in the store.
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    base_ = testing::make_layer_tar(temp_->path(), "base", std::string(300000, 'b') + test + tag_);
    top_ = testing::make_layer_tar(temp_->path(), "top",
                                   "the second layer\n" + std::string(9000, 't') + test);
  }
  void TearDown() override {
    if (!engine_.empty()) {
      for (const char* v : {":1", ":2", ":3"})
        (void)testing::run_docker(engine_, {"rmi", "-f", tag_ + v});
    }
  }
  Result<std::vector<std::string>> load(const std::string& archive) {
    EngineClient client(EngineOptions{engine_});
    MemorySource source(archive);
    return client.load_image(source);
  }

  std::string engine_;
  std::optional<TempDir> temp_;
  std::string tag_, base_, top_;
};

TEST_F(ContainerdEngineTest, LoadWritesOnlyWhatTheContentStoreLacksAndUnpacks) {
  EngineClient client(EngineOptions{engine_});
  auto info = client.info();
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_TRUE(info->load_reuses_blobs());
  EXPECT_NE(info->describe().find("containerd"), std::string::npos);

  auto first = load(oci_archive({base_}, tag_ + ":1", {}));
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(loaded_counts(*first), "blobs written: 3, already in the content store: 0");
  EXPECT_EQ(ctr_unpack_problem(engine_, tag_ + ":1"), "");

  // The base layer is not in the archive: the store has it.
  auto has = client.has_blob(Digest::of(base_).str());
  ASSERT_TRUE(has && *has);
  Digest manifest;
  auto second = load(oci_archive({base_, top_}, tag_ + ":2", {true, false}, &manifest));
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(loaded_counts(*second), "blobs written: 3, already in the content store: 0")
      << "the top layer, the config and the manifest; the base was not sent";
  auto seen = ctr_image(engine_, tag_ + ":2");
  EXPECT_EQ(seen.target, manifest.str());
  EXPECT_EQ(seen.config, Digest::of(config_for({base_, top_})).str());
  EXPECT_EQ(seen.diff_ids,
            (std::vector<std::string>{Digest::of(base_).str(), Digest::of(top_).str()}));
  EXPECT_EQ(ctr_unpack_problem(engine_, tag_ + ":2"), "");

  // Loading it again writes nothing.
  auto again = load(oci_archive({base_, top_}, tag_ + ":2", {}));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(loaded_counts(*again), "blobs written: 0, already in the content store: 4");

  // Our inspect agrees with ctr, and names the config digest (the CRI ID).
  auto detail = client.inspect_image(tag_ + ":2");
  ASSERT_TRUE(detail) << detail.error().message();
  EXPECT_EQ(detail->id, manifest.str());
  EXPECT_EQ(detail->config_digest, seen.config);
  auto by_config = client.inspect_image(seen.config);
  ASSERT_TRUE(by_config) << by_config.error().message();
  EXPECT_EQ(by_config->id, manifest.str());
}

TEST_F(ContainerdEngineTest, BadArchivesChangeNothingAndNameTheBlob) {
  std::string before = testing::run_docker(engine_, {"images", "-q", "--no-trunc"}).output;
  // The base is neither in the archive nor in the store.
  auto missing = load(oci_archive({base_, top_}, tag_ + ":3", {true, false}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find(Digest::of(base_).str()), std::string::npos)
      << missing.error().message();
  // A layer whose bytes are not what its name says.
  auto corrupt = load(oci_archive({base_, top_}, tag_ + ":3", {}, nullptr, 0));
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), ErrorCode::kVerifyFailed) << corrupt.error().message();
  EXPECT_NE(corrupt.error().message().find(Digest::of(base_).str()), std::string::npos)
      << corrupt.error().message();
  // A truncated archive.
  std::string whole = oci_archive({base_, top_}, tag_ + ":3", {});
  auto cut = load(whole.substr(0, whole.size() / 2));
  ASSERT_FALSE(cut);
  EXPECT_EQ(testing::run_docker(engine_, {"images", "-q", "--no-trunc"}).output, before);
  EXPECT_TRUE(ctr_image(engine_, tag_ + ":3").target.empty());
}

TEST_F(ContainerdEngineTest, ImagesReadBackFromTheContentStore) {
  auto loaded = load(oci_archive({base_, top_}, tag_ + ":2", {}));
  ASSERT_TRUE(loaded) << loaded.error().message();
  EngineClient client(EngineOptions{engine_});
  auto ref = ImageRef::parse(tag_ + ":2");
  ASSERT_TRUE(ref) << ref.error().message();
  auto image = open_image(*ref, &client);
  ASSERT_TRUE(image) << image.error().message();
  ASSERT_EQ((*image)->info().layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto layer = (*image)->open_layer(i);
    ASSERT_TRUE(layer) << layer.error().message();
    auto bytes = read_all(**layer, 1 << 26);
    ASSERT_TRUE(bytes) << bytes.error().message();
    EXPECT_EQ(*bytes, i == 0 ? base_ : top_);
  }
  EXPECT_EQ((*image)->info().image_id, Digest::of(config_for({base_, top_})));
}

TEST_F(ContainerdEngineTest, BundleFromAContainerdBuildHostRestoresTheSameId) {
  Digest manifest;
  ASSERT_TRUE(load(oci_archive({base_}, tag_ + ":1", {})));
  ASSERT_TRUE(load(oci_archive({base_, top_}, tag_ + ":2", {true, false}, &manifest)));
  fs::path bundle = temp_->path() / "b.dsb";
  auto made = testing::run_command({DELTASEND_BINARY, "--config", "/dev/null", "bundle",
                                    tag_ + ":2", "--base", tag_ + ":1", "-o", bundle.string(),
                                    "--unsigned", "--engine", engine_});
  ASSERT_TRUE(made.ok()) << made.output << made.error_output;
  EXPECT_NE(made.output.find(manifest.str()), std::string::npos) << made.output;
  EXPECT_LT(fs::file_size(bundle), top_.size()) << "the base layer is not in the bundle";
  ASSERT_TRUE(testing::run_docker(engine_, {"rmi", "-f", tag_ + ":2"}).ok());
  ASSERT_TRUE(ctr_image(engine_, tag_ + ":2").target.empty());
  auto applied = testing::run_command({DELTARECVD_BINARY, "--config", "/dev/null", "apply",
                                       bundle.string(), "--allow-unsigned", "--engine", engine_});
  ASSERT_TRUE(applied.ok()) << applied.output << applied.error_output;
  auto seen = ctr_image(engine_, tag_ + ":2");
  EXPECT_EQ(seen.target, manifest.str()) << applied.output;
  EXPECT_EQ(seen.config, Digest::of(config_for({base_, top_})).str());
  EXPECT_EQ(ctr_unpack_problem(engine_, tag_ + ":2"), "");
}

TEST_F(ContainerdEngineTest, ServiceIndexesAnImageLoadedLaterByPolling) {
  auto made =
      testing::run_command({MAKE_CERTS_SCRIPT, (temp_->path() / "pki").string(), "--receiver-name",
                            "localhost", "--receiver-ip", "127.0.0.1", "--sender-name", "build-1"});
  ASSERT_TRUE(made.ok()) << made.error_output;
  std::optional<testing::BackgroundProcess> receiver;
  std::string port;
  ASSERT_TRUE(testing::start_loopback_receiver({DELTARECVD_BINARY,
                                                temp_->path() / "pki",
                                                temp_->path() / "store",
                                                engine_,
                                                {"--index-poll-interval", "1"},
                                                temp_->path() / "receiver.log"},
                                               receiver, port));
  ASSERT_TRUE(
      receiver->wait_for_log("polling the engine's image list every 1s", std::chrono::seconds(30)))
      << receiver->log();
  auto loaded = load(oci_archive({base_, top_}, tag_ + ":1", {}));
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(receiver->wait_for_log("indexer: indexed " + tag_ + ":1", std::chrono::seconds(30)))
      << receiver->log();
  for (const auto& tar : {base_, top_})
    EXPECT_TRUE(std::filesystem::exists(temp_->path() / "store" / "layers" /
                                        (Digest::of(tar).hex() + ".tar")))
        << receiver->log();
  EXPECT_EQ(receiver->stop(SIGTERM), 0) << receiver->log();
}

}  // namespace
}  // namespace deltasync
