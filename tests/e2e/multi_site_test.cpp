// Several sites at once: `deltasend app:3 --to A --to B --to C`.
//
// Three real deltarecvd processes, each with its own store and its own
// engine: the fixture's receiver engine (site A) and two private dockerds
// this test starts (sites B and C, scripts/test-engine.sh under the test's
// temp directory). The sender's engine holds app:0..app:4; site A holds
// app:0, B app:1, C app:2 (docker save | docker load).
//   - round 1 sends app:3 to the three in parallel: each site chooses its
//     own basis (reported per site), all three end with the sender's image
//     ID, and the final JSON object lists the three results;
//   - round 2 sends app:4 to A and B, which now both hold app:3: they share
//     one coding of the layer streams (shared_encoding) and both load it.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "tests/support/background_process.h"
#include "tests/support/json_lines.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

struct Site {
  std::string name;
  std::string engine;
  std::optional<BackgroundProcess> receiver;
  std::string address;  // 127.0.0.1:PORT
};

class MultiSiteTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "multi-site-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-multi-site-" + std::to_string(::getpid());
    auto made =
        run_command({MAKE_CERTS_SCRIPT, (temp_->path() / "pki").string(), "--receiver-name",
                     "localhost", "--receiver-ip", "127.0.0.1", "--sender-name", "build-1"});
    ASSERT_TRUE(made.ok()) << made.error_output;
    sites_.resize(3);
    sites_[0].name = "a";
    sites_[0].engine = receiver_engine();
    for (size_t i = 1; i < 3; ++i) {
      sites_[i].name = std::string(1, static_cast<char>('a' + i));
      auto started = run_command({TEST_ENGINE_SCRIPT, "start", engine_name(i)}, engine_env());
      ASSERT_TRUE(started.ok()) << started.error_output;
      sites_[i].engine = started.output.substr(0, started.output.find('\n'));
      ASSERT_EQ(sites_[i].engine.rfind("unix://", 0), 0u) << started.output;
    }
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    build_versions();
    for (size_t i = 0; i < 3; ++i) {
      load_into(sites_[i].engine, tag_ + ":" + std::to_string(i));
      start_receiver(sites_[i]);
    }
  }

  void TearDown() override {
    for (auto& site : sites_) site.receiver.reset();
    for (int v = 0; v <= 4; ++v) {
      if (!sender_engine().empty())
        remove_image_cli(sender_engine(), tag_ + ":" + std::to_string(v));
      if (!receiver_engine().empty())
        remove_image_cli(receiver_engine(), tag_ + ":" + std::to_string(v));
    }
    if (temp_) {
      for (size_t i = 1; i < 3; ++i)
        (void)run_command({TEST_ENGINE_SCRIPT, "stop", engine_name(i)}, engine_env());
    }
  }

  std::string engine_name(size_t i) const { return "site-" + std::to_string(i); }
  std::map<std::string, std::string> engine_env() const {
    return {{"DELTASYNC_ENGINE_ROOT", (temp_->path() / "engines").string()}};
  }

  // app:0..app:4: 4 MiB files and small sources; each version edits a
  // large file, changes a source and adds one.
  void build_versions() {
    fs::path dir = temp_->path() / "ctx";
    for (int i = 0; i < 3; ++i)
      write_file(dir / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(4 << 20, i));
    for (int i = 0; i < 100; ++i)
      write_file(dir / "app" / "src" / ("f" + std::to_string(i) + ".js"), random_text(1500, i));
    write_file(dir / "Dockerfile", "FROM deltasync-base:busybox\nCOPY app /app\n");
    for (int v = 0; v <= 4; ++v) {
      if (v > 0) {
        std::string large = random_bytes(4 << 20, v % 3);
        large.replace(static_cast<size_t>(v) * 100000, 8, "version" + std::to_string(v));
        write_file(dir / "app" / ("large" + std::to_string(v % 3) + ".bin"), large);
        write_file(dir / "app" / "src" / ("f" + std::to_string(v) + ".js"),
                   "export const v = " + std::to_string(v) + ";\n");
        write_file(dir / "app" / ("added" + std::to_string(v) + ".bin"),
                   random_bytes(256 << 10, 100 + v));
      }
      auto id = build_image(sender_engine(), dir, tag_ + ":" + std::to_string(v));
      ASSERT_TRUE(id) << id.error().message();
    }
  }

  void load_into(const std::string& engine, const std::string& ref) {
    fs::path archive = temp_->path() / "image.tar";
    auto saved = run_docker(sender_engine(), {"save", "-o", archive.string(), ref});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
    auto loaded = run_docker(engine, {"load", "-i", archive.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
    fs::remove(archive);
  }

  fs::path pki(const std::string& file) const { return temp_->path() / "pki" / file; }

  void start_receiver(Site& site) {
    std::string port;
    ASSERT_TRUE(start_loopback_receiver({DELTARECVD_BINARY,
                                         temp_->path() / "pki",
                                         temp_->path() / ("store-" + site.name),
                                         site.engine,
                                         {},
                                         temp_->path() / ("receiver-" + site.name + ".log")},
                                        site.receiver, port));
    site.address = "127.0.0.1:" + port;
  }

  CommandResult send(const std::string& version, const std::vector<size_t>& sites,
                     bool json = true) {
    std::vector<std::string> argv = {DELTASEND_BINARY, tag_ + ":" + version,
                                     "--cert",         pki("sender-build-1.pem").string(),
                                     "--key",          pki("sender-build-1.key").string(),
                                     "--ca",           pki("ca.pem").string(),
                                     "--engine",       sender_engine(),
                                     "--cache-dir",    (temp_->path() / "cache").string(),
                                     "--parallel",     "3"};
    if (json) argv.push_back("--json");
    for (size_t i : sites) {
      argv.push_back("--to");
      argv.push_back(sites_[i].address);
    }
    return run_command(argv);
  }

  std::string logs() const {
    std::string all;
    for (const auto& site : sites_)
      if (site.receiver) all += "--- site " + site.name + ":\n" + site.receiver->log();
    return all;
  }

  std::optional<TempDir> temp_;
  std::string tag_;
  std::vector<Site> sites_;
};

TEST_F(MultiSiteTest, ThreeSitesWithDifferentBasesAllLoadTheTarget) {
  const std::string target = image_id_of(sender_engine(), tag_ + ":3");
  ASSERT_FALSE(target.empty());
  auto r = send("3", {0, 1, 2});
  ASSERT_TRUE(r.ok()) << r.output << r.error_output << logs();
  auto result = last_json_line(r.output);
  ASSERT_FALSE(result.is_discarded()) << r.output;
  EXPECT_EQ(result["event"], "result");
  EXPECT_EQ(result["ok"], true);
  ASSERT_EQ(result["sites"].size(), 3u) << result.dump(2);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("site " + sites_[i].name);
    const auto& site = result["sites"][i];
    EXPECT_EQ(site["site"], sites_[i].address);
    EXPECT_EQ(site["ok"], true) << site.dump(2);
    EXPECT_EQ(site["image_id"], target);
    // Each site's own basis: app:<i>.
    EXPECT_EQ(site["basis"], tag_ + ":" + std::to_string(i)) << site.dump(2);
    EXPECT_EQ(site["mode"], "local");
    EXPECT_EQ(image_id_of(sites_[i].engine, tag_ + ":3"), target);
    // Far below the new layer (12 MiB+): deltas against each own basis.
    EXPECT_LT(site["socket_bytes_sent"].get<uint64_t>(), 2u << 20) << site.dump(2);
  }

  // Round 2: A and B both hold app:3 now; app:4 is coded once for both.
  const std::string next = image_id_of(sender_engine(), tag_ + ":4");
  auto again = send("4", {0, 1});
  ASSERT_TRUE(again.ok()) << again.output << again.error_output << logs();
  auto second = last_json_line(again.output);
  ASSERT_EQ(second["sites"].size(), 2u) << second.dump(2);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("round 2, site " + sites_[i].name);
    const auto& site = second["sites"][i];
    EXPECT_EQ(site["ok"], true) << site.dump(2);
    EXPECT_EQ(site["basis"], tag_ + ":3");
    EXPECT_EQ(site["shared_encoding"], true) << site.dump(2);
    EXPECT_EQ(image_id_of(sites_[i].engine, tag_ + ":4"), next);
  }
  EXPECT_EQ(second["sites"][0]["stream_bytes"], second["sites"][1]["stream_bytes"]);
}

// One site down: the others still get the image; the exit status says that
// not all did, and the failed site's error names it.
TEST_F(MultiSiteTest, ASiteThatIsDownFailsAloneAndTheExitStatusSaysSo) {
  sites_[2].receiver.reset();  // C is down
  // Text: one table, a row per site; the error on stderr names the site.
  auto text = send("3", {0, 1, 2}, /*json=*/false);
  EXPECT_EQ(text.exit_code, 1) << text.output << text.error_output;
  EXPECT_NE(text.output.find("to 3 sites"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find(sites_[2].address + " "), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("FAILED"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("loaded"), std::string::npos) << text.output;
  EXPECT_NE(text.error_output.find("error: " + sites_[2].address), std::string::npos)
      << text.error_output;
  const std::string target = image_id_of(sender_engine(), tag_ + ":3");
  EXPECT_EQ(image_id_of(sites_[0].engine, tag_ + ":3"), target);
  EXPECT_EQ(image_id_of(sites_[1].engine, tag_ + ":3"), target);

  // JSON: A and B already hold it now; C still fails.
  auto r = send("3", {0, 1, 2});
  EXPECT_EQ(r.exit_code, 1) << r.output << r.error_output;
  auto result = last_json_line(r.output);
  ASSERT_EQ(result["sites"].size(), 3u) << r.output;
  EXPECT_EQ(result["ok"], false);
  EXPECT_EQ(result["sites"][0]["already_loaded"], true);
  EXPECT_EQ(result["sites"][1]["already_loaded"], true);
  EXPECT_EQ(result["sites"][2]["ok"], false);
  EXPECT_NE(result["sites"][2]["error"].get<std::string>().find("cannot connect"),
            std::string::npos)
      << result["sites"][2].dump();
}

}  // namespace
}  // namespace deltasync::testing
