// The sender's layer cache end to end (sender/cache/sender_layer_cache.h):
// the real deltasend against a real deltarecvd on loopback (mutual TLS),
// both on private dockerd engines. The site starts with only the base
// image; deltasend sends app:1 to it, then app:1 is removed from the
// sender's engine, as a prune or a fresh CI runner would leave it.
//   - app:2 then goes LOCAL with the basis from the cache, in fewer bytes
//     than REMOTE (--no-cache, against a fresh store), and the site holds
//     the sender's image ID both times;
//   - a budget too small for both images evicts the least recently used
//     layer (app:1's own) and keeps the rest;
//   - a cached layer damaged on disk is found before any delta is coded
//     against it: it is removed, the send goes REMOTE and succeeds.
#include <algorithm>
#include <filesystem>
#include <fstream>

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

class SenderCacheTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "sender-cache-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-cache-e2e-" + std::to_string(::getpid());
    auto made =
        run_command({MAKE_CERTS_SCRIPT, (temp_->path() / "pki").string(), "--receiver-name",
                     "localhost", "--receiver-ip", "127.0.0.1", "--sender-name", "build-1"});
    ASSERT_TRUE(made.ok()) << made.error_output;
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    ASSERT_TRUE(ensure_base_image(receiver_engine()));
    build_pair();
  }

  void TearDown() override {
    receiver_.reset();
    for (const auto& engine : {sender_engine(), receiver_engine()}) {
      if (engine.empty()) continue;
      for (const char* v : {":1", ":2"}) remove_image_cli(engine, tag_ + v);
    }
  }

  // The pair of daemon_transfer_test: app:2 edits a 3 MiB file in three
  // places, changes a small one, drops one and adds 16 KiB of new data
  // (little new data, so the bytes show the basis, not the literals).
  void build_pair() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 5; ++i)
      write_file(v1 / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(3 << 20, i));
    for (int i = 0; i < 300; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n" + random_text(2000, i));
    write_file(v1 / "Dockerfile", "FROM deltasync-base:busybox\nCOPY app /app\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    std::string large = random_bytes(3 << 20, 2);
    for (size_t off : {size_t{1000}, size_t{1} << 20, size_t{2} << 20})
      large.replace(off, 5, "EDIT!");
    write_file(v2 / "app" / "large2.bin", large);
    write_file(v2 / "app" / "src" / "f7.js", "export const v = 'seven';\n");
    write_file(v2 / "app" / "new.bin", random_bytes(16 << 10, 99));
    fs::remove(v2 / "app" / "large4.bin");
    ASSERT_TRUE(build_image(sender_engine(), v1, tag_ + ":1"));
    ASSERT_TRUE(build_image(sender_engine(), v2, tag_ + ":2"));
    v1_id_ = image_id_of(sender_engine(), tag_ + ":1");
    v2_id_ = image_id_of(sender_engine(), tag_ + ":2");
    v1_layers_ = diff_ids(tag_ + ":1");
    v2_layers_ = diff_ids(tag_ + ":2");
    ASSERT_GE(v1_layers_.size(), 2u);
    ASSERT_EQ(v1_layers_.size(), v2_layers_.size());
  }

  std::vector<std::string> diff_ids(const std::string& ref) {
    auto r = run_docker(sender_engine(),
                        {"image", "inspect", "--format", "{{json .RootFS.Layers}}", ref});
    EXPECT_TRUE(r.ok()) << r.error_output;
    auto j = nlohmann::json::parse(r.output, nullptr, false);
    std::vector<std::string> out;
    if (j.is_array())
      for (const auto& d : j) out.push_back(d.get<std::string>());
    return out;
  }

  void start_receiver(const std::string& name) {
    ASSERT_TRUE(start_loopback_receiver({DELTARECVD_BINARY,
                                         temp_->path() / "pki",
                                         temp_->path() / ("store-" + name),
                                         receiver_engine(),
                                         {},
                                         temp_->path() / ("receiver-" + name + ".log")},
                                        receiver_, port_));
  }

  struct Sent {
    nlohmann::json result;
    std::string stderr_text;
    uint64_t wire() const {
      return result.value("socket_bytes_sent", uint64_t{0}) +
             result.value("socket_bytes_received", uint64_t{0});
    }
  };
  Sent send(const std::string& version, std::vector<std::string> extra = {}) {
    fs::path pki = temp_->path() / "pki";
    std::vector<std::string> argv = {DELTASEND_BINARY, tag_ + ":" + version,
                                     "--to",           "127.0.0.1:" + port_,
                                     "--cert",         (pki / "sender-build-1.pem").string(),
                                     "--key",          (pki / "sender-build-1.key").string(),
                                     "--ca",           (pki / "ca.pem").string(),
                                     "--engine",       sender_engine(),
                                     "--cache-dir",    cache_dir().string(),
                                     "--log-level",    "info",
                                     "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_command(argv);
    EXPECT_TRUE(r.ok()) << r.error_output << "\nreceiver log:\n" << receiver_->log();
    Sent sent{last_json_line(r.output), r.error_output};
    EXPECT_FALSE(sent.result.is_discarded()) << r.output;
    return sent;
  }

  fs::path cache_dir() const { return cache_dir_.empty() ? temp_->path() / "cache" : cache_dir_; }
  fs::path cached_tar(const std::string& diff_id) const {
    return cache_dir() / "layers" / "layers" / (diff_id.substr(diff_id.find(':') + 1) + ".tar");
  }

  // Sends app:1 to a site holding only the base, then removes app:1 from
  // the sender's engine: from now on only the cache has its layers.
  void send_v1_then_prune(std::vector<std::string> extra = {}) {
    start_receiver("v1");
    Sent v1 = send("1", std::move(extra));
    ASSERT_EQ(v1.result["ok"], true) << v1.result.dump();
    ASSERT_EQ(image_id_of(receiver_engine(), tag_ + ":1"), v1_id_);
    for (const auto& d : v1_layers_)
      EXPECT_TRUE(fs::exists(cached_tar(d))) << "app:1's layer " << d << " must be cached";
    ASSERT_TRUE(remove_image_cli(sender_engine(), tag_ + ":1"));
    ASSERT_EQ(image_id_of(sender_engine(), v1_id_), "");
  }

  void expect_site_has_v2() {
    EXPECT_EQ(image_id_of(receiver_engine(), tag_ + ":2"), v2_id_)
        << "the site must hold " << tag_ << ":2 with the sender's image ID";
  }

  std::optional<TempDir> temp_;
  fs::path cache_dir_;  // empty: temp_/cache
  std::string tag_;
  std::string v1_id_, v2_id_;
  std::vector<std::string> v1_layers_, v2_layers_;
  std::string port_;
  std::optional<BackgroundProcess> receiver_;
};

TEST_F(SenderCacheTest, ASendAfterTheEngineLostTheBasisIsLocalFromTheCache) {
  send_v1_then_prune();
  // The cache holds app:1's config too: the new config is coded on it.
  EXPECT_TRUE(fs::exists(cache_dir() / "layers" / "configs" /
                         (v1_id_.substr(v1_id_.find(':') + 1) + ".json")));

  // A new receiver (fresh store) on the site that holds app:1.
  start_receiver("cache");
  Sent cached = send("2");
  EXPECT_EQ(cached.result["mode"], "local") << cached.result.dump();
  EXPECT_EQ(cached.result["basis_source"], "cache") << cached.result.dump();
  EXPECT_EQ(cached.result["image_id"], v2_id_);
  expect_site_has_v2();

  // The same update without the cache: REMOTE, the site's signatures.
  remove_image_cli(receiver_engine(), tag_ + ":2");
  ASSERT_EQ(image_id_of(receiver_engine(), v2_id_), "");
  start_receiver("remote");
  Sent remote = send("2", {"--no-cache"});
  EXPECT_EQ(remote.result["mode"], "remote") << remote.result.dump();
  EXPECT_EQ(remote.result["basis_source"], "");
  expect_site_has_v2();
  std::printf("wire bytes: local from the cache %llu, remote %llu\n",
              static_cast<unsigned long long>(cached.wire()),
              static_cast<unsigned long long>(remote.wire()));
  EXPECT_GT(remote.result["signature_bytes"].get<uint64_t>(), 0u);
  // REMOTE pays the signatures of the edited 3 MiB file (and the basis
  // index) on top of its streams; LOCAL from the cache pays neither.
  EXPECT_LE(cached.wire() + remote.result["signature_bytes"].get<uint64_t>(), remote.wire())
      << "LOCAL from the cache must save at least the signatures REMOTE needs";
  // --cache-budget 0: no layer cache at all (on a fresh directory nothing
  // is written under layers/, and the send is REMOTE).
  remove_image_cli(receiver_engine(), tag_ + ":2");
  start_receiver("off");
  cache_dir_ = temp_->path() / "cache-off";
  Sent off = send("2", {"--cache-budget", "0"});
  EXPECT_EQ(off.result["mode"], "remote") << off.result.dump();
  EXPECT_FALSE(fs::exists(cache_dir_ / "layers")) << "--cache-budget 0 must not fill a cache";
  expect_site_has_v2();
}

TEST_F(SenderCacheTest, TheBudgetEvictsTheLeastRecentlyUsedLayers) {
  send_v1_then_prune();
  start_receiver("v2");
  // Sized from what is cached now: the base layer, app:1's layer.
  uint64_t base = fs::file_size(cached_tar(v1_layers_[0]));
  uint64_t v1_own = fs::file_size(cached_tar(v1_layers_.back()));
  // app:2's own layer is app:1's less about 3 MiB (a 3 MiB file gone,
  // 16 KiB new): base + app:2's layer fit with 1 MiB to spare, app:1's
  // layer (the least recently used) must go.
  uint64_t budget = base + v1_own + (1u << 20);
  Sent v2 = send("2", {"--cache-budget", std::to_string(budget)});
  EXPECT_EQ(v2.result["basis_source"], "cache") << v2.result.dump();
  expect_site_has_v2();
  EXPECT_TRUE(fs::exists(cached_tar(v2_layers_.back()))) << "the newest layer stays";
  EXPECT_TRUE(fs::exists(cached_tar(v1_layers_[0]))) << "the base layer was used last: it stays";
  EXPECT_FALSE(fs::exists(cached_tar(v1_layers_.back())))
      << "app:1's own layer was used least recently: evicted";
  uint64_t used = 0;
  for (const auto& e : fs::recursive_directory_iterator(cache_dir() / "layers"))
    if (e.is_regular_file()) used += e.file_size();
  EXPECT_LE(used, budget);
  EXPECT_NE(v2.stderr_text.find("evicting"), std::string::npos) << v2.stderr_text;
}

TEST_F(SenderCacheTest, ADamagedCachedLayerIsDroppedAndTheSendGoesRemote) {
  send_v1_then_prune();
  // Flip one byte in the middle of app:1's own layer (a file payload: the
  // tar still parses, and its .idx is untouched).
  fs::path victim = cached_tar(v1_layers_.back());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    auto middle = static_cast<std::streamoff>(fs::file_size(victim) / 2);
    f.seekg(middle);
    char byte = 0;
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x20);
    f.seekp(middle);
    f.write(&byte, 1);
    ASSERT_TRUE(f);
  }
  start_receiver("damaged");
  Sent sent = send("2");
  EXPECT_EQ(sent.result["ok"], true);
  EXPECT_EQ(sent.result["mode"], "remote")
      << "a damaged basis must not be used: " << sent.result.dump();
  EXPECT_NE(sent.stderr_text.find("damaged"), std::string::npos) << sent.stderr_text;
  expect_site_has_v2();
  // The damaged file is gone (app:1 is in no engine here, so nothing puts
  // it back); app:2's layers came in.
  EXPECT_FALSE(fs::exists(victim)) << "a damaged layer must not stay in the cache";
  EXPECT_TRUE(fs::exists(cached_tar(v2_layers_.back())));
}

}  // namespace
}  // namespace deltasync::testing
