// A cut, reset or stalled link at any point of a session costs at most one
// segment: deltasend through a fault proxy (tests/support/fault_proxy.h) to
// a real deltarecvd, at 24 cut points spread over the whole session (inside
// the TLS handshake, in the layer streams, in the Commit), then once more
// through a clean proxy.
//
// The receiver and its store are the same for the whole sweep (what a site
// lives with: the leftovers of one interrupted session must not disturb the
// next); between points the image is removed from the site's engine and its
// rebuilt layers from the store (as the budget would evict them), so every
// point transfers the same bytes again. Asserted at every point:
//   - the cut run exits nonzero with a clear error;
//   - the rerun exits 0 and the site holds the sender's image ID;
//   - the rerun sends at most (T - N) + U + H bytes, where T is what a clean
//     transfer sends, N the bytes the receiver got before the cut, U the
//     larger of one segment and the largest file (what the receiver may
//     lose: everything after its last checkpoint), H the fixed cost of a
//     session (handshake, Hello, Plan, Commit). Before the first checkpoint
//     nothing is kept, which the bound allows since N < H + U there;
//   - nothing half-done stays in the store, which stays within its budget.
// Plus one stall (the sender's --io-timeout ends it with a timeout error)
// and one reset (RST, SO_LINGER 0).
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "tests/support/background_process.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/json_lines.h"
#include "tests/support/loopback_receiver.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSegmentBytes = 262144;
constexpr uint64_t kLargestFile = 1 << 20;  // app/new/big.bin
// What may be lost after the last checkpoint: one segment or one file, plus
// its headers, frames and TLS records (random data does not compress).
constexpr uint64_t kLostUnit = std::max(kSegmentBytes, kLargestFile) + (32 << 10);
// A session's fixed cost, sent again by the rerun: TLS handshake (two EC
// certificates, 2-3 KiB), Hello, Plan, signature requests, Commit.
constexpr uint64_t kSessionOverhead = 32 << 10;
constexpr const char* kStoreBudget = "64M";
constexpr uint64_t kStoreBudgetBytes = 64ull << 20;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> layers_of(const std::string& engine, const std::string& ref) {
  auto r = run_docker(
      engine, {"image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", ref});
  std::vector<std::string> out;
  std::istringstream in(r.output);
  for (std::string d; in >> d;) out.push_back(d);
  return out;
}

uint64_t tree_bytes(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

bool tree_has_files(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) return true;
  return false;
}

std::string first_error_line(const std::string& err) {
  std::string line;
  std::istringstream in(err);
  for (std::string l; std::getline(in, l);)
    if (l.find("error") != std::string::npos) return l;
  return trim(err);
}

struct SendRun {
  int exit_code = -1;
  std::string error;  // stderr
  nlohmann::json json;
  double seconds = 0;
  uint64_t sent() const {
    return json.is_object() && json.contains("socket_bytes_sent")
               ? json["socket_bytes_sent"].get<uint64_t>()
               : 0;
  }
};

class FaultSweepTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "fault-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-fault-e2e-" + std::to_string(::getpid());
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

  // v1: 2 MiB of binaries and 100 sources. v2: one binary edited, one source
  // changed, and about 8 MiB the site cannot have: 20 files of 200 KiB and
  // one of 1 MiB in the app layer, 12 of 256 KiB in a second layer.
  void build_pair() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 4; ++i)
      write_file(v1 / "app" / "lib" / ("m" + std::to_string(i) + ".bin"),
                 random_bytes(512 << 10, 10 + i));
    for (int i = 0; i < 100; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n" + random_text(2000, i));
    write_file(v1 / "Dockerfile", std::string("FROM ") + kBaseImageRef + "\nCOPY app /app\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    std::string lib = random_bytes(512 << 10, 11);
    for (size_t off : {size_t{100}, size_t{200} << 10, size_t{400} << 10})
      lib.replace(off, 5, "EDIT!");
    write_file(v2 / "app" / "lib" / "m1.bin", lib);
    write_file(v2 / "app" / "src" / "f7.js", "export const v = 'seven';\n");
    for (int i = 0; i < 20; ++i)
      write_file(v2 / "app" / "new" / ("n" + std::to_string(i) + ".bin"),
                 random_bytes(200 << 10, 100 + i));
    write_file(v2 / "app" / "new" / "big.bin", random_bytes(kLargestFile, 99));
    for (int i = 0; i < 12; ++i)
      write_file(v2 / "data" / ("d" + std::to_string(i) + ".bin"),
                 random_bytes(256 << 10, 200 + i));
    write_file(v2 / "Dockerfile",
               std::string("FROM ") + kBaseImageRef + "\nCOPY app /app\nCOPY data /data\n");
    auto id1 = build_image(sender_engine(), v1, tag_ + ":1");
    ASSERT_TRUE(id1) << id1.error().message();
    auto id2 = build_image(sender_engine(), v2, tag_ + ":2");
    ASSERT_TRUE(id2) << id2.error().message();
    target_id_ = image_id_of(sender_engine(), tag_ + ":2");
    auto basis = layers_of(sender_engine(), tag_ + ":1");
    for (const auto& d : layers_of(sender_engine(), tag_ + ":2"))
      if (std::find(basis.begin(), basis.end(), d) == basis.end()) new_layers_.push_back(d);
    ASSERT_EQ(new_layers_.size(), 2u);
    fs::path archive = temp_->path() / "v1.tar";
    auto saved = run_docker(sender_engine(), {"save", "-o", archive.string(), tag_ + ":1"});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
    auto loaded = run_docker(receiver_engine(), {"load", "-i", archive.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
  }

  fs::path pki(const std::string& file) const { return temp_->path() / "pki" / file; }
  fs::path store() const { return temp_->path() / "store"; }

  void start_receiver() {
    std::string port;
    ASSERT_TRUE(start_loopback_receiver({DELTARECVD_BINARY,
                                         temp_->path() / "pki",
                                         store(),
                                         receiver_engine(),
                                         {"--store-budget", kStoreBudget},
                                         temp_->path() / "receiver.log"},
                                        receiver_, port));
    port_ = static_cast<uint16_t>(std::stoi(port));
  }

  SendRun send_via(const FaultProxy& proxy, bool remote, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {DELTASEND_BINARY,
                                     tag_ + ":2",
                                     "--to",
                                     "127.0.0.1:" + std::to_string(proxy.port()),
                                     "--cert",
                                     pki("sender-build-1.pem").string(),
                                     "--key",
                                     pki("sender-build-1.key").string(),
                                     "--ca",
                                     pki("ca.pem").string(),
                                     "--engine",
                                     sender_engine(),
                                     "--cache-dir",
                                     (temp_->path() / "cache").string(),
                                     "--segment-bytes",
                                     std::to_string(kSegmentBytes),
                                     "--json"};
    if (remote) argv.push_back("--no-local-basis");
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto started = std::chrono::steady_clock::now();
    auto r = run_command(argv);
    SendRun run;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    run.exit_code = r.exit_code;
    run.error = r.error_output;
    if (r.ok()) run.json = last_json_line(r.output);
    return run;
  }

  // A clean transfer; checks the site and the store afterwards.
  SendRun send_clean(bool remote) {
    auto proxy = FaultProxy::start(port_, {});
    EXPECT_TRUE(proxy);
    if (!proxy) return {};
    SendRun run = send_via(*proxy, remote);
    EXPECT_EQ(run.exit_code, 0) << run.error << "\nreceiver log:\n" << receiver_->log();
    EXPECT_FALSE(run.json.is_discarded());
    if (run.exit_code == 0) {
      EXPECT_EQ(run.json["image_id"], target_id_);
    }
    EXPECT_EQ(image_id_of(receiver_engine(), tag_ + ":2"), target_id_)
        << "the site must hold " << tag_ << ":2 with the sender's image ID";
    EXPECT_FALSE(tree_has_files(store() / "partial")) << "a loaded image leaves no partial copy";
    EXPECT_LE(tree_bytes(store()), kStoreBudgetBytes);
    return run;
  }

  // The site forgets the target: out of the engine, its new layers out of the store.
  void forget_target() {
    remove_image_cli(receiver_engine(), tag_ + ":2");
    ASSERT_EQ(image_id_of(receiver_engine(), target_id_), "");
    for (const auto& d : new_layers_) {
      std::string hex = d.substr(d.find(':') + 1);
      std::error_code ec;
      fs::remove(store() / "layers" / (hex + ".tar"), ec);
      fs::remove(store() / "layers" / (hex + ".idx"), ec);
    }
  }

  std::optional<TempDir> temp_;
  std::string tag_;
  std::string target_id_;
  std::vector<std::string> new_layers_;
  uint16_t port_ = 0;
  std::optional<BackgroundProcess> receiver_;
};

struct Row {
  std::string mode;
  std::string fault;
  uint64_t point = 0;
  uint64_t total = 0;
  int first_exit = 0;
  std::string first_error;
  int rerun_exit = 0;
  uint64_t rerun_sent = 0;
  uint64_t bound = 0;
  int resumed = 0;
};

void print_table(const std::vector<Row>& rows) {
  std::printf("\n%-6s %-5s %9s %6s %5s %5s %10s %10s %7s  %s\n", "mode", "fault", "cut at", "of T",
              "exit1", "exit2", "rerun sent", "bound", "resumed", "first run's error");
  for (const auto& r : rows) {
    std::string err = r.first_error.substr(0, 110);
    std::printf("%-6s %-5s %9llu %5.1f%% %5d %5d %10llu %10llu %7d  %s\n", r.mode.c_str(),
                r.fault.c_str(), static_cast<unsigned long long>(r.point),
                100.0 * static_cast<double>(r.point) / static_cast<double>(r.total), r.first_exit,
                r.rerun_exit, static_cast<unsigned long long>(r.rerun_sent),
                static_cast<unsigned long long>(r.bound), r.resumed, err.c_str());
  }
  std::fflush(stdout);
}

TEST_F(FaultSweepTest, EveryCutPointResumesWithinOneSegment) {
  start_receiver();
  // What a clean transfer sends, LOCAL and REMOTE (the REMOTE run also
  // fills the sender's index cache, as every later REMOTE run finds it).
  uint64_t total[2] = {0, 0};
  for (int remote = 0; remote < 2; ++remote) {
    SendRun clean = send_clean(remote);
    ASSERT_EQ(clean.exit_code, 0);
    EXPECT_EQ(clean.json["mode"], remote ? "remote" : "local");
    total[remote] = clean.sent();
    forget_target();
  }
  {
    // Once more in REMOTE, with the index cached: the T of the sweep.
    SendRun clean = send_clean(true);
    ASSERT_EQ(clean.exit_code, 0);
    total[1] = clean.sent();
    forget_target();
  }
  std::printf("clean transfer: T = %llu bytes sent (local), %llu (remote)\n",
              static_cast<unsigned long long>(total[0]), static_cast<unsigned long long>(total[1]));
  ASSERT_GT(total[0], 6u << 20);

  // Cut points, as offsets into T: inside the TLS handshake (the ClientHello,
  // the client's certificate flight), spread over the layer streams, and in
  // the last frames (the Commit). Odd points run REMOTE.
  std::vector<int64_t> early = {1, 60, 300, 900, 1600, 2600};
  std::vector<int64_t> late = {-3000, -300, -64};
  const int kSpread = 15;
  std::vector<std::pair<uint64_t, bool>> points;
  int n = 0;
  auto add = [&](auto offset_of) {
    bool remote = (n++ % 2) == 1;
    points.emplace_back(offset_of(total[remote]), remote);
  };
  for (int64_t e : early) add([&](uint64_t) { return static_cast<uint64_t>(e); });
  for (int i = 1; i <= kSpread; ++i) add([&](uint64_t t) { return t * i / (kSpread + 1); });
  for (int64_t l : late) add([&](uint64_t t) { return t - static_cast<uint64_t>(-l); });

  std::vector<Row> rows;
  auto rerun_and_check = [&](Row& row, bool remote, uint64_t arrived) {
    SendRun again = send_clean(remote);
    row.rerun_exit = again.exit_code;
    row.rerun_sent = again.sent();
    if (again.exit_code == 0) row.resumed = again.json["layers_resumed"].get<int>();
    uint64_t t = row.total;
    row.bound = (t > arrived ? t - arrived : 0) + kLostUnit + kSessionOverhead;
    EXPECT_LE(row.rerun_sent, row.bound)
        << row.fault << " at " << row.point << ": the rerun sent more than it should have";
    forget_target();
  };

  for (const auto& [point, remote] : points) {
    SCOPED_TRACE("cut at " + std::to_string(point) + (remote ? " (remote)" : " (local)"));
    Row row{remote ? "remote" : "local", "cut", point, total[remote]};
    {
      auto proxy = FaultProxy::start(port_, {FaultMode::kCut, point});
      ASSERT_TRUE(proxy);
      SendRun cut = send_via(*proxy, remote);
      row.first_exit = cut.exit_code;
      row.first_error = first_error_line(cut.error);
      EXPECT_TRUE(proxy->fault_fired());
      EXPECT_NE(cut.exit_code, 0) << "a session cut before its Commit was through cannot succeed";
      EXPECT_NE(cut.error.find("deltasend: error:"), std::string::npos) << cut.error;
      EXPECT_TRUE(std::regex_search(
          cut.error,
          std::regex("closed by peer|reset|broken pipe|handshake|end of file", std::regex::icase)))
          << "the error should say the connection went away:\n"
          << cut.error;
      proxy.reset();  // the receiver has seen the FIN by now
    }
    rerun_and_check(row, remote, point);
    rows.push_back(row);
    if (HasFatalFailure()) break;
  }

  // A stall: from half-way the link carries nothing (for 60 s, longer than
  // the sender waits); the sender gives up after its --io-timeout (3 s) with
  // a timeout error, and the link goes down without delivering what the
  // sender's kernel still held (if the proxy resumed instead, those bytes
  // would arrive after the sender gave up and the receiver could finish the
  // transfer on its own; seen: the rerun then finds the image loaded). The
  // rerun resumes from the receiver's checkpoints.
  {
    uint64_t point = total[0] / 2;
    Row row{"local", "stall", point, total[0]};
    auto proxy =
        FaultProxy::start(port_, {FaultMode::kStall, point, std::chrono::milliseconds(60000)});
    ASSERT_TRUE(proxy);
    SendRun stalled = send_via(*proxy, false, {"--io-timeout", "3"});
    row.first_exit = stalled.exit_code;
    row.first_error = first_error_line(stalled.error);
    EXPECT_TRUE(proxy->fault_fired());
    EXPECT_NE(stalled.exit_code, 0);
    EXPECT_NE(stalled.error.find("not finished within 3 s"), std::string::npos) << stalled.error;
    EXPECT_LT(stalled.seconds, 30.0) << "the sender must give up after its I/O timeout";
    proxy.reset();  // the link goes down
    rerun_and_check(row, false, point);
    EXPECT_GE(row.resumed, 1) << "half-way through, the rerun must resume the layer";
    rows.push_back(row);
  }
  // A reset (RST) in the middle: what had reached the receiver's socket but
  // was not read yet is lost, so only "at most T" plus overhead is sure.
  {
    uint64_t point = total[1] / 2;
    Row row{"remote", "reset", point, total[1]};
    auto proxy = FaultProxy::start(port_, {FaultMode::kReset, point});
    ASSERT_TRUE(proxy);
    SendRun reset = send_via(*proxy, true);
    row.first_exit = reset.exit_code;
    row.first_error = first_error_line(reset.error);
    EXPECT_TRUE(proxy->fault_fired());
    EXPECT_NE(reset.exit_code, 0);
    EXPECT_TRUE(std::regex_search(
        reset.error, std::regex("reset|closed by peer|broken pipe", std::regex::icase)))
        << reset.error;
    proxy.reset();
    rerun_and_check(row, true, 0);
    rows.push_back(row);
  }
  print_table(rows);
  std::string log = receiver_->log();
  EXPECT_NE(log.find("resuming at entry"), std::string::npos) << "no point resumed a layer";
  EXPECT_FALSE(tree_has_files(store() / "tmp"));
  EXPECT_LE(tree_bytes(store()), kStoreBudgetBytes);
}

}  // namespace
}  // namespace deltasync::testing
