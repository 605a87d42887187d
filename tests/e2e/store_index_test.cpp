// The receiver's background indexer end to end (receiver/service/
// engine_indexer.h): a real deltarecvd on the receiver engine, the real
// deltasend against the sender engine, which holds OLD (:1) and NEW (:2).
//   - a site whose engine holds OLD indexes it at start-up (the status says
//     so), and a send of NEW then exports nothing from the site's engine
//     (status: session_exports 0, no "exporting basis" in the log); the same
//     send with --no-index-engine exports OLD once, which shows the counter
//     and the log line do tell;
//   - an image `docker load`ed after start-up is indexed from the engine's
//     events;
//   - a small budget: the indexer leaves out what does not fit in its share
//     and the store stays within it;
//   - SIGTERM stops the service (indexer included) cleanly, exit 0: idle
//     (waiting for events) and in the middle of the start-up scan, whose
//     cancelled copy leaves no partial layer in the store.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/io/file.h"
#include "tests/support/background_process.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StoreIndexTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "store-index-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-index-e2e-" + std::to_string(::getpid());
    auto made =
        run_command({MAKE_CERTS_SCRIPT, (temp_->path() / "pki").string(), "--receiver-name",
                     "localhost", "--receiver-ip", "127.0.0.1", "--sender-name", "build-1"});
    ASSERT_TRUE(made.ok()) << made.error_output;
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    ASSERT_TRUE(ensure_base_image(receiver_engine()));
    build_pair();
  }

  void TearDown() override {
    if (receiver_) receiver_->stop(SIGTERM);
    receiver_.reset();
    for (const auto& engine : {sender_engine(), receiver_engine()}) {
      if (engine.empty()) continue;
      for (const char* v : {":1", ":2"}) remove_image_cli(engine, tag_ + v);
    }
  }

  // OLD: 4 files of 2 MiB and 200 small ones; NEW: one edited, one new file.
  void build_pair() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 4; ++i)
      write_file(v1 / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(2 << 20, i));
    for (int i = 0; i < 200; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"), random_text(2000, i));
    write_file(v1 / "Dockerfile", "FROM deltasync-base:busybox\nCOPY app /app\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    std::string large = random_bytes(2 << 20, 1);
    large.replace(1000, 5, "EDIT!");
    write_file(v2 / "app" / "large1.bin", large);
    write_file(v2 / "app" / "new.bin", random_bytes(1 << 20, 77));
    auto id1 = build_image(sender_engine(), v1, tag_ + ":1");
    ASSERT_TRUE(id1) << id1.error().message();
    auto id2 = build_image(sender_engine(), v2, tag_ + ":2");
    ASSERT_TRUE(id2) << id2.error().message();
    old_id_ = image_id_of(sender_engine(), tag_ + ":1");
    target_id_ = image_id_of(sender_engine(), tag_ + ":2");
    archive_ = temp_->path() / "v1.tar";
    auto saved = run_docker(sender_engine(), {"save", "-o", archive_.string(), tag_ + ":1"});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
  }

  void load_old_into_site() {
    auto loaded = run_docker(receiver_engine(), {"load", "-i", archive_.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
  }

  fs::path pki(const std::string& file) const { return temp_->path() / "pki" / file; }

  void start_receiver(const std::string& store, std::vector<std::string> extra = {}) {
    if (receiver_) {
      ASSERT_EQ(receiver_->stop(SIGTERM), 0) << receiver_->log();
    }
    ASSERT_TRUE(start_loopback_receiver(
        {DELTARECVD_BINARY, temp_->path() / "pki", temp_->path() / store, receiver_engine(),
         std::move(extra), temp_->path() / (store + ".log")},
        receiver_, port_));
  }

  std::vector<std::string> tls_args() const {
    return {"--to",   "127.0.0.1:" + port_,
            "--cert", pki("sender-build-1.pem").string(),
            "--key",  pki("sender-build-1.key").string(),
            "--ca",   pki("ca.pem").string()};
  }

  nlohmann::json status() {
    std::vector<std::string> argv = {DELTASEND_BINARY, "status", "--json"};
    for (auto& a : tls_args()) argv.push_back(a);
    auto r = run_command(argv);
    EXPECT_TRUE(r.ok()) << r.error_output;
    return nlohmann::json::parse(r.output, nullptr, false);
  }

  // The status entry of the site's image `id`, null if not listed.
  static nlohmann::json image_in(const nlohmann::json& status, const std::string& id) {
    if (!status.is_object() || !status.contains("images")) return nullptr;
    for (const auto& image : status["images"])
      if (image["image_id"] == id) return image;
    return nullptr;
  }

  // Polls the status until OLD shows as in the store, up to `timeout`.
  bool wait_old_in_store(std::chrono::seconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      auto image = image_in(status(), old_id_);
      if (image.is_object() && image["in_store"].get<bool>()) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  }

  void send_new() {
    std::vector<std::string> argv = {DELTASEND_BINARY, tag_ + ":2",
                                     "--engine",       sender_engine(),
                                     "--cache-dir",    (temp_->path() / "cache").string(),
                                     "--json"};
    for (auto& a : tls_args()) argv.push_back(a);
    auto r = run_command(argv);
    ASSERT_TRUE(r.ok()) << r.error_output << "\nreceiver log:\n" << receiver_->log();
    EXPECT_EQ(image_id_of(receiver_engine(), tag_ + ":2"), target_id_);
  }

  std::optional<TempDir> temp_;
  std::string tag_, old_id_, target_id_, port_;
  fs::path archive_;
  std::optional<BackgroundProcess> receiver_;
};

TEST_F(StoreIndexTest, IndexedAtStartSoTheFirstSendExportsNothing) {
  load_old_into_site();
  // Without the indexer: the session exports OLD (what the counter counts).
  start_receiver("store-off", {"--no-index-engine"});
  send_new();
  auto off = status();
  EXPECT_EQ(off["session_exports"], 1) << off.dump();
  EXPECT_EQ(off["indexer_exports"], 0) << off.dump();
  EXPECT_EQ(off["indexer"], "");
  EXPECT_NE(receiver_->log().find("exporting basis"), std::string::npos) << receiver_->log();
  remove_image_cli(receiver_engine(), tag_ + ":2");
  ASSERT_EQ(image_id_of(receiver_engine(), tag_ + ":2"), "");

  // With it, on a fresh store: OLD is indexed before any sender comes.
  start_receiver("store-on");
  ASSERT_TRUE(wait_old_in_store(180s)) << receiver_->log();
  EXPECT_NE(receiver_->log().find("indexer: indexed " + tag_ + ":1"), std::string::npos)
      << receiver_->log();
  auto before = status();
  uint32_t indexer_exports = before["indexer_exports"].get<uint32_t>();
  EXPECT_GE(indexer_exports, 1u) << before.dump();
  EXPECT_NE(before["indexer"].get<std::string>().find("events"), std::string::npos)
      << before.dump();
  send_new();
  auto after = status();
  EXPECT_EQ(after["session_exports"], 0) << after.dump() << "\n" << receiver_->log();
  EXPECT_EQ(receiver_->log().find("exporting basis"), std::string::npos) << receiver_->log();
  // SIGTERM: the indexer (waiting on the engine's events) stops with the rest.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(receiver_->stop(SIGTERM, 20s), 0) << receiver_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  receiver_.reset();
}

TEST_F(StoreIndexTest, AnImageLoadedAfterStartIsIndexedFromEvents) {
  remove_image_cli(receiver_engine(), tag_ + ":1");
  start_receiver("store-events");
  // The start-up scan has ended once the status carries its summary.
  auto until = std::chrono::steady_clock::now() + 180s;
  while (std::chrono::steady_clock::now() < until &&
         status()["indexer"].get<std::string>().find("events:") == std::string::npos)
    std::this_thread::sleep_for(500ms);
  ASSERT_NE(status()["indexer"].get<std::string>().find("events:"), std::string::npos)
      << receiver_->log();
  EXPECT_TRUE(image_in(status(), old_id_).is_null());
  load_old_into_site();
  // Well within one event window (60 s): the event itself woke the indexer.
  auto loaded = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_old_in_store(30s)) << receiver_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - loaded, 30s);
  EXPECT_TRUE(receiver_->wait_for_log("indexer: indexed " + tag_ + ":1", 5s)) << receiver_->log();
}

TEST_F(StoreIndexTest, AStoreAtItsShareDoesNotGrow) {
  load_old_into_site();
  // OLD is about 9 MiB; 10 MiB at 50% leaves 5 MiB for the indexer.
  start_receiver("store-small", {"--store-budget", "10M", "--index-engine-share", "50"});
  ASSERT_TRUE(receiver_->wait_for_log("indexer: not indexing " + tag_ + ":1", 180s))
      << receiver_->log();
  auto s = status();
  EXPECT_LE(s["store_bytes"].get<uint64_t>(), 5u << 20) << s.dump();
  EXPECT_EQ(s["store_budget"].get<uint64_t>(), 10u << 20);
  auto old = image_in(s, old_id_);
  ASSERT_TRUE(old.is_object()) << s.dump();
  EXPECT_FALSE(old["in_store"].get<bool>()) << s.dump();
  EXPECT_NE(s["indexer"].get<std::string>().find("beyond its share"), std::string::npos);
}

TEST_F(StoreIndexTest, SigtermWhileIndexingStopsAtOnceAndKeepsTheStoreWhole) {
  load_old_into_site();
  start_receiver("store-term");
  // Most likely in the middle of the start-up scan's export or copy of OLD.
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(receiver_->stop(SIGTERM, 20s), 0) << receiver_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << receiver_->log();
  std::string log = receiver_->log();
  receiver_.reset();
  // Whatever was in the store then is whole: every layer hashes to its name
  // (a cancelled copy leaves nothing behind), no temp files left.
  fs::path layers = temp_->path() / "store-term" / "layers";
  if (fs::exists(layers)) {
    for (const auto& entry : fs::directory_iterator(layers)) {
      std::string name = entry.path().filename().string();
      if (entry.path().extension() == ".idx") continue;
      ASSERT_EQ(entry.path().extension(), ".tar") << name << "\n" << log;
      auto content = read_small_file(entry.path(), 256u << 20);
      ASSERT_TRUE(content) << content.error().message();
      EXPECT_EQ(Digest::of(*content).hex() + ".tar", name) << log;
    }
  }
}

}  // namespace
}  // namespace deltasync::testing
