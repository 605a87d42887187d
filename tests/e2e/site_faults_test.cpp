// Faults on the site, end to end: a real deltarecvd on loopback with real
// certificates, the real deltasend against the sender engine, real dockerd
// engines. Each fault must end with a clear error, leave the receiver up and
// its store consistent, and a rerun of the same command must succeed.
//   - EngineStoppedBeforeAndDuringTheLoad: the site's engine (a private
//     dockerd of this test, so that stopping it disturbs no other test) is
//     stopped before a send, then while the site loads the image;
//   - StoreDiskFull: the store is a small tmpfs that fills up in the middle
//     of a layer; remounted bigger, the rerun resumes and finishes;
//   - BasisRemovedBetweenRuns: the basis of an earlier transfer (and the
//     image it brought) are removed from the site's engine; sending again,
//     and sending a newer version, still end with the sender's image ID.
//
// The sender engine holds app:1, app:2 and app:3 (siblings on the busybox
// base, each a successor of the previous one); the site starts with app:1.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"
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
using std::chrono::seconds;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A private dockerd with the layout of scripts/test-engine.sh (DIR/d.sock,
// data/, x/, dockerd.pid), started and stopped by the test itself so that
// its images survive a stop. remove() hands the directory to
// `test-engine.sh stop`, which kills what is left, unmounts and deletes it.
class PrivateEngine {
 public:
  explicit PrivateEngine(fs::path dir) : dir_(std::move(dir)) {}
  ~PrivateEngine() { remove(); }
  PrivateEngine(const PrivateEngine&) = delete;
  PrivateEngine& operator=(const PrivateEngine&) = delete;

  std::string address() const { return "unix://" + (dir_ / "d.sock").string(); }

  ::testing::AssertionResult start() {
    std::error_code ec;
    fs::create_directories(dir_ / "data", ec);
    fs::create_directories(dir_ / "x", ec);
    write_file(dir_ / "daemon.json", "{}\n");
    write_file(dir_ / "engine.conf", "name=" + dir_.filename().string() + "\n");
    auto process = BackgroundProcess::start(
        {"dockerd", "--config-file", (dir_ / "daemon.json").string(), "--storage-driver=vfs",
         "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none", "--data-root",
         (dir_ / "data").string(), "--exec-root", (dir_ / "x").string(), "--pidfile",
         (dir_ / "dockerd.pid").string(), "--host", address()},
        dir_ / "dockerd.log");
    if (!process) return ::testing::AssertionFailure() << "cannot start dockerd";
    process_.emplace(std::move(*process));
    auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline && process_->running()) {
      if (EngineClient(EngineOptions{address(), seconds(5)}).ping())
        return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return ::testing::AssertionFailure()
           << "dockerd at " << address() << " did not answer within 60 s:\n"
           << process_->log();
  }

  // SIGTERM, as `systemctl stop docker` does; dockerd stops its containerd.
  ::testing::AssertionResult stop() {
    if (!process_) return ::testing::AssertionSuccess();
    int status = process_->stop(SIGTERM, seconds(60));
    process_.reset();
    if (EngineClient(EngineOptions{address(), seconds(5)}).ping())
      return ::testing::AssertionFailure() << "the engine still answers after its stop";
    if (status != 0) return ::testing::AssertionFailure() << "dockerd exited with " << status;
    return ::testing::AssertionSuccess();
  }

  void remove() {
    if (dir_.empty()) return;
    (void)stop();
    auto script = make_base_image_script().parent_path() / "test-engine.sh";
    auto stopped = run_command({script.string(), "stop", dir_.filename().string()},
                               {{"DELTASYNC_ENGINE_ROOT", dir_.parent_path().string()}});
    EXPECT_TRUE(stopped.ok()) << stopped.error_output;
    dir_.clear();
  }

 private:
  fs::path dir_;
  std::optional<BackgroundProcess> process_;
};

class SiteFaultsTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "site-faults-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-site-faults-" + std::to_string(::getpid());
    site_ = receiver_engine();
    auto made =
        run_command({MAKE_CERTS_SCRIPT, (temp_->path() / "pki").string(), "--receiver-name",
                     "localhost", "--receiver-ip", "127.0.0.1", "--sender-name", "build-1"});
    ASSERT_TRUE(made.ok()) << made.error_output;
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    build_versions();
  }

  void TearDown() override {
    if (receiver_) {
      EXPECT_TRUE(receiver_->running()) << "deltarecvd exited:\n" << receiver_->log();
      receiver_.reset();
    }
    private_engine_.reset();
    if (!tmpfs_.empty() && ::umount(tmpfs_.c_str()) != 0) ::umount2(tmpfs_.c_str(), MNT_DETACH);
    for (const char* v : {":1", ":2", ":3"}) {
      remove_image_cli(sender_engine(), tag_ + v);
      remove_image_cli(receiver_engine(), tag_ + v);
    }
    temp_.reset();
    engine_temp_.reset();
  }

  // app:1, then app:2 (a few edits, 12 MiB of new data), then app:3 (more
  // edits on app:2): one layer each on the busybox base.
  void build_versions() {
    fs::path dir = temp_->path() / "build";
    for (int i = 0; i < 2; ++i)
      write_file(dir / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(1 << 20, i));
    for (int i = 0; i < 100; ++i)
      write_file(dir / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n" + random_text(2000, i));
    write_file(dir / "Dockerfile", "FROM deltasync-base:busybox\nCOPY app /app\n");
    build_version(dir, 1);
    std::string large = random_bytes(1 << 20, 1);
    large.replace(1000, 5, "EDIT!");
    write_file(dir / "app" / "large1.bin", large);
    write_file(dir / "app" / "src" / "f7.js", "export const v = 'seven';\n");
    write_file(dir / "app" / "new.bin", random_bytes(12 << 20, 99));
    build_version(dir, 2);
    write_file(dir / "app" / "src" / "f8.js", "export const v = 'eight';\n");
    write_file(dir / "app" / "newer.bin", random_bytes(1 << 20, 100));
    build_version(dir, 3);
  }

  void build_version(const fs::path& dir, int version) {
    std::string ref = tag_ + ":" + std::to_string(version);
    auto id = build_image(sender_engine(), dir, ref);
    ASSERT_TRUE(id) << id.error().message();
    ids_[version] = *id;
  }

  // Copies app:<version> from the sender engine to the site's.
  void give_site(int version) {
    fs::path archive = temp_->path() / ("v" + std::to_string(version) + ".tar");
    auto saved = run_docker(sender_engine(),
                            {"save", "-o", archive.string(), tag_ + ":" + std::to_string(version)});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
    auto loaded = run_docker(site_, {"load", "-i", archive.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
    fs::remove(archive);
  }

  // The site's engine is a private dockerd (under /var/tmp: unix socket
  // paths are limited to 107 bytes), holding the busybox base.
  void use_private_site_engine() {
    auto dir = TempDir::create("/var/tmp", "dsf-");
    ASSERT_TRUE(dir);
    engine_temp_.emplace(std::move(*dir));
    private_engine_ = std::make_unique<PrivateEngine>(engine_temp_->path() / "site");
    ASSERT_TRUE(private_engine_->start());
    site_ = private_engine_->address();
    ASSERT_TRUE(ensure_base_image(site_));
  }

  fs::path pki(const std::string& file) const { return temp_->path() / "pki" / file; }

  void start_receiver(const fs::path& store, std::vector<std::string> extra = {}) {
    ASSERT_TRUE(start_loopback_receiver(
        {DELTARECVD_BINARY, temp_->path() / "pki", store, site_, std::move(extra),
         temp_->path() / ("receiver-" + std::to_string(++receivers_started_) + ".log")},
        receiver_, port_));
  }

  std::vector<std::string> send_argv(int version, std::vector<std::string> extra = {}) const {
    std::vector<std::string> argv = {DELTASEND_BINARY, tag_ + ":" + std::to_string(version),
                                     "--to",           "127.0.0.1:" + port_,
                                     "--cert",         pki("sender-build-1.pem").string(),
                                     "--key",          pki("sender-build-1.key").string(),
                                     "--ca",           pki("ca.pem").string(),
                                     "--engine",       sender_engine(),
                                     "--cache-dir",    (temp_->path() / "cache").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  // Runs deltasend --json, expecting success and the sender's image ID on
  // the site; returns its result object.
  nlohmann::json send_ok(int version, std::vector<std::string> extra = {}) {
    extra.push_back("--json");
    auto r = run_command(send_argv(version, std::move(extra)));
    EXPECT_TRUE(r.ok()) << r.output << r.error_output << "\nreceiver log:\n" << receiver_->log();
    auto j = last_json_line(r.output);
    EXPECT_FALSE(j.is_discarded()) << r.output;
    if (j.is_discarded()) return nlohmann::json::object();
    EXPECT_EQ(j["image_id"], ids_[version]);
    EXPECT_EQ(image_id_of(site_, tag_ + ":" + std::to_string(version)), ids_[version])
        << "the site must hold " << tag_ << ":" << version << " with the sender's image ID";
    return j;
  }

  // Runs deltasend, expecting failure; returns its standard error.
  std::string send_fails(int version, std::vector<std::string> extra = {}) {
    auto r = run_command(send_argv(version, std::move(extra)));
    EXPECT_NE(r.exit_code, 0) << r.output;
    print_error_line(r.error_output);
    return r.error_output;
  }

  // Shows (in the test log) the error line deltasend printed.
  static void print_error_line(const std::string& output) {
    size_t at = output.find("deltasend: error: ");
    EXPECT_NE(at, std::string::npos) << output;
    if (at != std::string::npos)
      std::printf("%s\n", output.substr(at, output.find('\n', at) - at).c_str());
  }

  // What a failed session may leave in the store: verified layers (each
  // hashes to its name), checkpointed partial layers, nothing in tmp/, no
  // temp files of interrupted writes.
  void expect_store_consistent(const fs::path& store) {
    EXPECT_TRUE(fs::is_empty(store / "tmp"));
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(store, ec)) {
      std::string name = e.path().filename().string();
      EXPECT_EQ(name.find(".tmp"), std::string::npos) << "temp file left: " << e.path();
    }
    for (const auto& e : fs::directory_iterator(store / "layers", ec)) {
      if (e.path().extension() != ".tar") continue;
      auto bytes = read_small_file(e.path(), size_t{1} << 30);
      ASSERT_TRUE(bytes) << bytes.error().message();
      EXPECT_EQ(Digest::of(*bytes).hex(), e.path().stem().string())
          << "a stored layer does not hash to its name: " << e.path();
    }
    for (const auto& e : fs::recursive_directory_iterator(store / "partial", ec)) {
      if (!e.is_regular_file()) continue;
      if (e.path().extension() == ".ckpt") {
        EXPECT_TRUE(fs::exists(fs::path(e.path()).replace_extension(".tar"))) << e.path();
        continue;
      }
      EXPECT_EQ(e.path().extension(), ".tar") << "unexpected file " << e.path();
      auto checkpoint =
          read_small_file(fs::path(e.path()).replace_extension(".ckpt"), 256).value_or("");
      uint64_t entries = 0, bytes = 0;
      std::istringstream(checkpoint) >> entries >> bytes;
      EXPECT_EQ(fs::file_size(e.path()), bytes)
          << e.path() << ": a partial layer holds bytes no checkpoint covers";
    }
  }

  std::optional<TempDir> temp_;
  std::optional<TempDir> engine_temp_;
  std::unique_ptr<PrivateEngine> private_engine_;
  std::string tag_;
  std::string site_;  // the site's engine address
  std::map<int, std::string> ids_;
  std::string port_;
  std::optional<BackgroundProcess> receiver_;
  int receivers_started_ = 0;
  fs::path tmpfs_;
};

// The site's engine stopped: before the session (its first step pings the
// engine) and while the site loads the rebuilt image. The sender is told
// which engine failed and what to do; the receiver stays up; once the
// engine runs again the same command succeeds.
TEST_F(SiteFaultsTest, EngineStoppedBeforeAndDuringTheLoad) {
  use_private_site_engine();
  give_site(1);
  fs::path store = temp_->path() / "store";
  start_receiver(store);

  ASSERT_TRUE(private_engine_->stop());
  std::string error = send_fails(2);
  EXPECT_NE(error.find("the site's engine"), std::string::npos) << error;
  EXPECT_NE(error.find(site_), std::string::npos) << error;
  EXPECT_NE(error.find("is dockerd running"), std::string::npos) << error;
  EXPECT_TRUE(receiver_->running()) << receiver_->log();
  expect_store_consistent(store);
  ASSERT_TRUE(private_engine_->start());

  // Stop it as soon as the receiver starts loading. The load may still win
  // the race on a fast machine: then remove the image and try again (the
  // rebuilt layers stay in the store, so later tries reach the load sooner).
  bool stopped_during_load = false;
  for (int attempt = 0; attempt < 4 && !stopped_during_load; ++attempt) {
    SCOPED_TRACE("attempt " + std::to_string(attempt));
    std::string loading = "loading " + tag_ + ":2 into the engine";
    size_t loads_before = count_of(receiver_->log(), loading);
    auto sender = BackgroundProcess::start(
        send_argv(2), temp_->path() / ("sender-" + std::to_string(attempt) + ".log"));
    ASSERT_TRUE(sender);
    auto deadline = std::chrono::steady_clock::now() + seconds(180);
    while (count_of(receiver_->log(), loading) == loads_before && sender->running() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_GT(count_of(receiver_->log(), loading), loads_before)
        << "the site never started loading\n"
        << sender->log() << receiver_->log();
    ASSERT_TRUE(private_engine_->stop());
    int status = sender->stop(0, seconds(120));
    std::string output = sender->log();
    EXPECT_TRUE(receiver_->running()) << receiver_->log();
    expect_store_consistent(store);
    ASSERT_TRUE(private_engine_->start());
    if (status == 0) {
      std::printf("attempt %d: the load finished before the engine stopped\n", attempt);
      EXPECT_EQ(image_id_of(site_, tag_ + ":2"), ids_[2]);
      remove_image_cli(site_, tag_ + ":2");
      continue;
    }
    stopped_during_load = true;
    print_error_line(output);
    EXPECT_NE(output.find("the site's engine"), std::string::npos) << output;
    EXPECT_NE(output.find(site_), std::string::npos) << output;
    EXPECT_NE(output.find("run the same command again"), std::string::npos) << output;
    // The engine holds the whole image or none of it.
    std::string id = image_id_of(site_, ids_[2]);
    EXPECT_TRUE(id.empty() || id == ids_[2]) << id;
  }
  EXPECT_TRUE(stopped_during_load) << "the load always finished first; stop not exercised";

  // With the engine back, the same command succeeds, without sending the
  // layers again (they were rebuilt and verified before the load).
  auto rerun = send_ok(2);
  EXPECT_EQ(rerun.value("layers_sent", -1), 0) << rerun.dump();
  EXPECT_TRUE(fs::is_empty(store / "partial"));
  EXPECT_TRUE(fs::is_empty(store / "tmp"));
}

// The store's file system fills up in the middle of a layer: a tmpfs that
// holds the basis the receiver exports (busybox + app:1, about 5 MiB) but
// not the 14 MiB layer of app:2. The error names the store and says to free
// space; the store keeps only verified layers and checkpoints. Remounted
// bigger, the rerun resumes and succeeds.
TEST_F(SiteFaultsTest, StoreDiskFull) {
  give_site(1);
  tmpfs_ = temp_->path() / "store";
  fs::create_directories(tmpfs_);
  ASSERT_EQ(::mount("tmpfs", tmpfs_.c_str(), "tmpfs", 0, "size=10m"), 0)
      << "mount -t tmpfs: " << std::strerror(errno) << " (this test needs root)";
  start_receiver(tmpfs_);

  std::vector<std::string> small_segments = {"--segment-bytes", "1048576"};
  std::string error = send_fails(2, small_segments);
  EXPECT_NE(error.find("store " + tmpfs_.string()), std::string::npos) << error;
  EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
  EXPECT_NE(error.find("free space"), std::string::npos) << error;
  // The layer is named once, though both ends add it as context.
  size_t first = error.find("layer 2 (");
  ASSERT_NE(first, std::string::npos) << error;
  EXPECT_EQ(error.find("layer 2 (", first + 1), std::string::npos) << error;
  EXPECT_TRUE(receiver_->running()) << receiver_->log();
  EXPECT_EQ(image_id_of(site_, ids_[2]), "");
  expect_store_consistent(tmpfs_);

  ASSERT_EQ(::mount("tmpfs", tmpfs_.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0)
      << "remount: " << std::strerror(errno);
  auto rerun = send_ok(2, small_segments);
  EXPECT_GE(rerun.value("layers_resumed", 0), 1) << rerun.dump();
  EXPECT_TRUE(fs::is_empty(tmpfs_ / "partial"));
  EXPECT_TRUE(fs::is_empty(tmpfs_ / "tmp"));
  expect_store_consistent(tmpfs_);
}

// The basis of an earlier transfer, and the image it brought, are removed
// from the site's engine. The receiver then chooses another basis (an image
// sharing the busybox layer) and finds the layers of app:1 and app:2 in its
// store: app:2 again needs no layer data, app:3 only its own layer.
TEST_F(SiteFaultsTest, BasisRemovedBetweenRuns) {
  ASSERT_TRUE(ensure_base_image(site_));
  give_site(1);
  fs::path store = temp_->path() / "store";
  start_receiver(store);
  auto first = send_ok(2);
  EXPECT_EQ(first["mode"], "local");

  for (const char* v : {":2", ":1"}) ASSERT_TRUE(remove_image_cli(site_, tag_ + v));
  ASSERT_EQ(image_id_of(site_, ids_[1]), "");
  ASSERT_EQ(image_id_of(site_, ids_[2]), "");

  auto again = send_ok(2);
  EXPECT_EQ(again.value("already_loaded", true), false) << again.dump();
  EXPECT_EQ(again.value("layers_sent", -1), 0) << again.dump();

  // A newer version, REMOTE: the site sends the index of its new basis.
  // (The basis comes from the engine only, so app:2's layer, still in the
  // store, is not used: app:3's layer goes against the busybox base.)
  ASSERT_TRUE(remove_image_cli(site_, tag_ + ":2"));
  auto newer = send_ok(3, {"--no-local-basis"});
  EXPECT_EQ(newer["mode"], "remote");
  EXPECT_EQ(newer.value("layers_sent", -1), 1) << newer.dump();
  EXPECT_TRUE(fs::is_empty(store / "partial"));
  expect_store_consistent(store);

  // And with a fresh store: nothing to reuse but the busybox layer; same
  // image.
  ASSERT_TRUE(remove_image_cli(site_, tag_ + ":3"));
  start_receiver(temp_->path() / "fresh-store");
  auto fresh = send_ok(3);
  EXPECT_EQ(fresh.value("layers_sent", -1), 1) << fresh.dump();
  for (const auto* run : {&first, &again, &newer, &fresh})
    std::printf("sent %llu bytes\n",
                static_cast<unsigned long long>(run->value("socket_bytes_sent", uint64_t{0})));
}

}  // namespace
}  // namespace deltasync::testing
