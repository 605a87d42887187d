// Pull mode through a real registry (Debian's distribution 2.8, started by
// the test on loopback): `deltasend publish` pushes app:2 and one delta per
// base; `deltarecvd pull` on a site holding app:1, on one holding app:1.5 and
// on one holding neither must each end with app:2 under the build host's
// image ID and diff_ids, the first two through a delta, the third through a
// plain pull of the missing layers. A registry that is down, a damaged delta
// and a cut link must never leave a broken image: the site either keeps
// what it had, falls back to a plain pull, or resumes where it was cut.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "common/registry/delta_artifact.h"
#include "tests/support/background_process.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"
#include "tests/support/test_registry.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string image_list(const std::string& engine) {
  auto r = run_docker(engine, {"images", "-a", "-q", "--no-trunc"});
  EXPECT_TRUE(r.ok()) << r.error_output;
  return r.output;
}

Json parse_json_output(const CommandResult& r) {
  Json j = Json::parse(r.output, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.output << r.error_output;
  return j;
}

class RegistryPullTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "pull-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    repo_ = "ds-pull-e2e-" + std::to_string(::getpid());
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    ASSERT_TRUE(ensure_base_image(receiver_engine()));
    signing_key_ = temp_->path() / "signing.key";
    trusted_key_ = temp_->path() / "signing.pub";
    ASSERT_TRUE(
        run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out", signing_key_.string()})
            .ok());
    ASSERT_TRUE(run_command({"openssl", "pkey", "-in", signing_key_.string(), "-pubout", "-out",
                             trusted_key_.string()})
                    .ok());
    build_versions();
  }

  // app:1, app:1.5 and app:2 on the build host: 2 edits a few files of 1.5,
  // which edits a few of 1.
  void build_versions() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 4; ++i)
      write_file(v1 / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(2 << 20, i));
    for (int i = 0; i < 100; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n");
    write_file(v1 / "Dockerfile", "FROM deltasync-base:busybox\nCOPY app /app\n");
    fs::path v15 = temp_->path() / "v15";
    fs::copy(v1, v15, fs::copy_options::recursive);
    std::string large = random_bytes(2 << 20, 1);
    large.replace(4096, 6, "EDIT15");
    write_file(v15 / "app" / "large1.bin", large);
    write_file(v15 / "app" / "src" / "f3.js", "export const v = 'three';\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v15, v2, fs::copy_options::recursive);
    large.replace(1 << 20, 6, "EDIT20");
    write_file(v2 / "app" / "large1.bin", large);
    write_file(v2 / "app" / "src" / "f9.js", "export const v = 'nine';\n");
    write_file(v2 / "app" / "new.txt", "new in 2\n");
    // New content no basis holds: the delta carries it (~400 KiB), enough
    // to cut into parts.
    write_file(v2 / "app" / "new-data.bin", random_bytes(400 << 10, 77));
    for (auto [dir, version] : {std::pair{v1, "1"}, std::pair{v15, "1.5"}, std::pair{v2, "2"}}) {
      auto id = build_image(sender_engine(), dir, repo_ + ":" + version);
      ASSERT_TRUE(id) << id.error().message();
      ids_[version] = *id;
    }
  }

  // Moves build-host image `version` to the site (docker save | load).
  void give_site(const std::string& version) {
    fs::path archive = temp_->path() / ("v" + version + ".tar");
    ASSERT_TRUE(
        run_docker(sender_engine(), {"save", "-o", archive.string(), repo_ + ":" + version}).ok());
    ASSERT_TRUE(run_docker(receiver_engine(), {"load", "-i", archive.string()}).ok());
  }

  void clear_site() {
    for (const char* v : {":1", ":1.5", ":2"}) remove_image_cli(receiver_engine(), repo_ + v);
    if (registry_) remove_image_cli(receiver_engine(), pulled_name());
  }

  void TearDown() override {
    if (!sender_engine().empty())
      for (const char* v : {":1", ":1.5", ":2"}) remove_image_cli(sender_engine(), repo_ + v);
    if (!receiver_engine().empty()) clear_site();
  }

  void start_registry(const TestRegistryOptions& options) {
    registry_ = TestRegistry::start(options);
    ASSERT_TRUE(registry_);
  }

  std::vector<std::string> registry_flags() const {
    std::vector<std::string> flags{"--registry-auth", registry_->docker_config_path()};
    if (!registry_->ca_file().empty()) {
      flags.push_back("--registry-ca");
      flags.push_back(registry_->ca_file());
    } else {
      flags.push_back("--registry-insecure");
    }
    return flags;
  }

  std::string pulled_name() const { return registry_->host() + "/" + repo_ + ":2"; }

  CommandResult publish(const std::vector<std::string>& bases,
                        const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{DELTASEND_BINARY,
                                  "--config",
                                  "/dev/null",
                                  "--engine",
                                  sender_engine(),
                                  "publish",
                                  repo_ + ":2",
                                  "--registry",
                                  registry_->host() + "/" + repo_,
                                  "--signing-key",
                                  signing_key_.string(),
                                  "--json"};
    for (const auto& base : bases) {
      argv.push_back("--base");
      argv.push_back(repo_ + ":" + base);
    }
    for (const auto& f : registry_flags()) argv.push_back(f);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  }

  // `deltarecvd pull` as a site with its own store.
  CommandResult pull(const fs::path& store, const std::string& reference = "",
                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{DELTARECVD_BINARY, "--config",        "/dev/null",
                                  "--engine",        receiver_engine(), "--store",
                                  store.string(),    "--trusted-key",   trusted_key_.string()};
    for (const auto& f : registry_flags()) argv.push_back(f);
    argv.push_back("pull");
    argv.push_back(reference.empty() ? pulled_name() : reference);
    argv.push_back("--json");
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  }

  // The site holds the build host's app:2: same image ID (config digest),
  // under the registry name it was pulled as.
  void expect_site_has_version_2() {
    std::string id = image_id_of(receiver_engine(), pulled_name());
    if (engine_ids_are_config_digests(receiver_engine())) {
      EXPECT_EQ(id, ids_["2"]);
    } else {
      EXPECT_FALSE(id.empty());
    }
    auto sender = run_docker(
        sender_engine(), {"image", "inspect", "--format", "{{json .RootFS.Layers}}", repo_ + ":2"});
    auto site = run_docker(receiver_engine(), {"image", "inspect", "--format",
                                               "{{json .RootFS.Layers}}", pulled_name()});
    ASSERT_TRUE(sender.ok() && site.ok()) << site.error_output;
    EXPECT_EQ(sender.output, site.output);
  }

  std::optional<TempDir> temp_;
  std::string repo_;
  fs::path signing_key_, trusted_key_;
  std::map<std::string, std::string> ids_;
  std::unique_ptr<TestRegistry> registry_;
};

TEST_F(RegistryPullTest, ThreeSitesEndWithTheSameImage) {
  start_registry({.tls = true, .basic_auth = true});
  auto published = publish({"1", "1.5"});
  ASSERT_TRUE(published.ok()) << published.error_output;
  Json pub = parse_json_output(published);
  ASSERT_EQ(pub["deltas"].size(), 2u) << published.output;
  EXPECT_FALSE(pub["image_already_there"].get<bool>());
  // Publishing again sends no blob: everything is there already.
  auto again = publish({"1", "1.5"});
  ASSERT_TRUE(again.ok()) << again.error_output;
  Json pub2 = parse_json_output(again);
  EXPECT_TRUE(pub2["image_already_there"].get<bool>());
  EXPECT_LT(pub2["registry_bytes_sent"].get<uint64_t>(), 64u << 10) << again.output;

  // Site A holds 1.
  clear_site();
  give_site("1");
  auto a = pull(temp_->path() / "store-a");
  ASSERT_TRUE(a.ok()) << a.error_output;
  Json ra = parse_json_output(a);
  EXPECT_EQ(ra["outcome"], "delta") << a.output;
  EXPECT_EQ(ra["delta_from"], ids_["1"]);
  EXPECT_EQ(ra["delta_found_by"], "referrers tag");  // distribution 2.8 has no referrers API
  expect_site_has_version_2();
  // Every step of a delta round is timed, in order.
  std::vector<std::string> phases;
  for (const auto& [phase, seconds] : ra["phases"].items()) {
    phases.push_back(phase);
    EXPECT_GE(seconds.get<double>(), 0.0) << phase;
  }
  for (const char* step :
       {"poll", "resolve", "discover", "fetch", "assemble", "verify", "basis", "rebuild", "load"})
    EXPECT_NE(std::find(phases.begin(), phases.end(), step), phases.end())
        << step << ": " << a.output;
  uint64_t delta_a = ra["bytes_fetched"].get<uint64_t>();
  // A second round is one HEAD.
  auto a2 = pull(temp_->path() / "store-a");
  ASSERT_TRUE(a2.ok()) << a2.error_output;
  Json ra2 = parse_json_output(a2);
  EXPECT_EQ(ra2["outcome"], "up to date");
  EXPECT_EQ(ra2["bytes_fetched"].get<uint64_t>(), 0u);
  EXPECT_LE(ra2["registry_requests"].get<uint64_t>(), 3u) << a2.output;  // 401 + HEAD (+token)

  // Site B holds 1.5 only.
  clear_site();
  give_site("1.5");
  auto b = pull(temp_->path() / "store-b");
  ASSERT_TRUE(b.ok()) << b.error_output;
  Json rb = parse_json_output(b);
  EXPECT_EQ(rb["outcome"], "delta") << b.output;
  EXPECT_EQ(rb["delta_from"], ids_["1.5"]);
  expect_site_has_version_2();

  // Site C holds neither: a plain pull of the app layer (the base image's
  // layers it holds are not fetched).
  clear_site();
  auto c = pull(temp_->path() / "store-c");
  ASSERT_TRUE(c.ok()) << c.error_output;
  Json rc = parse_json_output(c);
  EXPECT_EQ(rc["outcome"], "full pull") << c.output;
  EXPECT_NE(rc["fallback_reason"].get<std::string>().find("none of the 2 deltas"),
            std::string::npos)
      << c.output;
  expect_site_has_version_2();
  uint64_t full = rc["bytes_fetched"].get<uint64_t>();
  EXPECT_LT(delta_a * 5, full) << "delta " << delta_a << " B, full pull " << full << " B";
  std::printf("fetched: delta from 1 %llu B, delta from 1.5 %llu B, full pull %llu B\n",
              static_cast<unsigned long long>(delta_a),
              static_cast<unsigned long long>(rb["bytes_fetched"].get<uint64_t>()),
              static_cast<unsigned long long>(full));
  // Parts and blobs do not stay in the store once loaded.
  for (const char* s : {"store-a", "store-b", "store-c"}) {
    size_t leftovers = 0;
    for (const auto& e : fs::directory_iterator(temp_->path() / s / "pulls"))
      if (e.path().filename() != "state") ++leftovers;
    EXPECT_EQ(leftovers, 0u) << s;
  }
}

TEST_F(RegistryPullTest, ConcurrentPublishesOfDifferentBasesAreBothListed) {
  // Two build hosts publish deltas to the same target at once, from
  // different bases: both update the referrers tag index, which
  // distribution 2.8 lets the last PUT win. (referrers_tag_test makes the
  // race certain; here it is the real command, end to end.)
  start_registry({.tls = true, .basic_auth = true});
  auto image = publish({});  // the target first, so both deltas have the same subject
  ASSERT_TRUE(image.ok()) << image.error_output;
  CommandResult from_1, from_15;
  std::thread one([&] { from_1 = publish({"1"}); });
  std::thread other([&] { from_15 = publish({"1.5"}); });
  one.join();
  other.join();
  ASSERT_TRUE(from_1.ok()) << from_1.error_output;
  ASSERT_TRUE(from_15.ok()) << from_15.error_output;
  Json p1 = parse_json_output(from_1), p15 = parse_json_output(from_15);
  ASSERT_EQ(p1["deltas"].size(), 1u);
  ASSERT_EQ(p15["deltas"].size(), 1u);
  ASSERT_EQ(p1["manifest_digest"], p15["manifest_digest"]);
  auto subject = Digest::parse(p1["manifest_digest"].get<std::string>());
  ASSERT_TRUE(subject);

  auto client = RegistryClient::create(registry_->host(), registry_->client_options());
  ASSERT_TRUE(client) << client.error().message();
  auto index = (*client)->get_manifest(repo_, referrers_tag(*subject));
  ASSERT_TRUE(index && *index) << (index ? "no index" : index.error().message());
  auto entries = parse_index_descriptors((*index)->body);
  ASSERT_TRUE(entries) << entries.error().message();
  std::set<std::string> listed;
  for (const auto& d : *entries) listed.insert(d.digest.str());
  EXPECT_EQ(listed.size(), 2u) << (*index)->body;
  for (const Json* p : {&p1, &p15})
    EXPECT_TRUE(listed.count((*p)["deltas"][0]["manifest_digest"].get<std::string>()))
        << (*index)->body;

  // A site holding 1.5 finds its delta through the index.
  clear_site();
  give_site("1.5");
  auto b = pull(temp_->path() / "store-b");
  ASSERT_TRUE(b.ok()) << b.error_output;
  Json rb = parse_json_output(b);
  EXPECT_EQ(rb["outcome"], "delta") << b.output;
  EXPECT_EQ(rb["delta_from"], ids_["1.5"]);
  EXPECT_EQ(rb["delta_found_by"], "referrers tag");
  expect_site_has_version_2();

  // Had the index update from 1.5 been lost (an older publisher, a race
  // beyond the retries), the index lists only the delta from 1: a site
  // holding 1.5 still finds its delta through the per-basis tag.
  RegistryDescriptor only_1;
  for (const auto& d : *entries)
    if (d.digest.str() == p1["deltas"][0]["manifest_digest"].get<std::string>()) only_1 = d;
  ASSERT_TRUE((*client)->put_manifest(repo_, referrers_tag(*subject), media_type::kOciIndex,
                                      referrers_index_json({only_1})));
  clear_site();
  give_site("1.5");
  auto c = pull(temp_->path() / "store-c");
  ASSERT_TRUE(c.ok()) << c.error_output;
  Json rc = parse_json_output(c);
  EXPECT_EQ(rc["outcome"], "delta") << c.output;
  EXPECT_EQ(rc["delta_from"], ids_["1.5"]);
  EXPECT_EQ(rc["delta_found_by"], "delta tag");
  expect_site_has_version_2();
}

TEST_F(RegistryPullTest, ReferrersApiAndTokenAuth) {
  start_registry({.token_auth = true, .referrers_api = true});
  auto published = publish({"1"});
  ASSERT_TRUE(published.ok()) << published.error_output;
  clear_site();
  give_site("1");
  auto a = pull(temp_->path() / "store");
  ASSERT_TRUE(a.ok()) << a.error_output;
  Json ra = parse_json_output(a);
  EXPECT_EQ(ra["outcome"], "delta") << a.output;
  EXPECT_EQ(ra["delta_found_by"], "referrers API");
  expect_site_has_version_2();
}

TEST_F(RegistryPullTest, DownOrDamagedRegistryNeverBreaksTheSite) {
  start_registry({});
  auto published = publish({"1"}, {"--part-size", "64K"});
  ASSERT_TRUE(published.ok()) << published.error_output;
  clear_site();
  give_site("1");
  std::string before = image_list(receiver_engine());

  // A damaged part in the registry's storage: the delta is refused (its
  // digest), and the site falls back to a plain pull of the same image.
  Json pub = parse_json_output(published);
  auto blob_file = [&](const std::string& digest) {
    std::string hex = digest.substr(digest.find(':') + 1);
    return registry_->storage_dir() / "docker/registry/v2/blobs/sha256" / hex.substr(0, 2) / hex /
           "data";
  };
  auto manifest_text = read_small_file(blob_file(pub["deltas"][0]["manifest_digest"]), 1 << 20);
  ASSERT_TRUE(manifest_text) << manifest_text.error().message();
  Json manifest = Json::parse(*manifest_text);
  size_t damaged = 0;
  {
    fs::path part = blob_file(manifest["layers"][0]["digest"]);
    ASSERT_TRUE(fs::exists(part)) << part;
    std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.get(c);
    f.seekp(100);
    f.put(static_cast<char>(c ^ 0x5a));
    ++damaged;
  }
  ASSERT_EQ(damaged, 1u);
  auto fallback = pull(temp_->path() / "store");
  ASSERT_TRUE(fallback.ok()) << fallback.error_output;
  Json rf = parse_json_output(fallback);
  EXPECT_EQ(rf["outcome"], "full pull") << fallback.output;
  EXPECT_NE(rf["fallback_reason"].get<std::string>().find("the delta failed"), std::string::npos)
      << fallback.output;
  expect_site_has_version_2();

  // The registry down: a clear error naming it, the site as it was.
  remove_image_cli(receiver_engine(), pulled_name());
  before = image_list(receiver_engine());
  registry_->stop_registry();
  auto down = pull(temp_->path() / "store");
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.error_output.find(registry_->host()), std::string::npos) << down.error_output;
  EXPECT_EQ(image_list(receiver_engine()), before);
}

// The link cut about 20 times during the fetch: every cut resumes where it
// stopped (HTTP Range into the part's partial file), so the bytes fetched
// exceed the delta by less than one part, and the site ends with the image.
TEST_F(RegistryPullTest, CutFetchResumesWithinOnePart) {
  start_registry({});
  const uint64_t part_size = 16 << 10;
  auto published = publish({"1"}, {"--part-size", "16K"});
  ASSERT_TRUE(published.ok()) << published.error_output;
  uint64_t bundle_bytes = parse_json_output(published)["deltas"][0]["bundle_bytes"];
  ASSERT_GT(bundle_bytes, 4 * part_size) << "the delta is too small to cut into parts";
  clear_site();
  give_site("1");
  // Each connection is cut after 1/20 of the delta has reached the site.
  auto proxy = FaultProxy::start(registry_->registry_port(),
                                 {FaultMode::kCut, bundle_bytes / 20, std::chrono::milliseconds(0),
                                  FaultDirection::kServerToClient});
  ASSERT_TRUE(proxy);
  std::string via = "127.0.0.1:" + std::to_string(proxy->port()) + "/" + repo_ + ":2";
  auto cut = pull(temp_->path() / "store", via, {"--attempts", "100"});
  ASSERT_TRUE(cut.ok()) << cut.error_output;
  Json r = parse_json_output(cut);
  EXPECT_EQ(r["outcome"], "delta") << cut.output;
  EXPECT_GE(r["resumes"].get<uint64_t>(), 15u) << cut.output;
  EXPECT_LE(r["bytes_fetched"].get<uint64_t>(), bundle_bytes + part_size) << cut.output;
  EXPECT_GE(r["bytes_fetched"].get<uint64_t>(), bundle_bytes) << cut.output;
  std::printf("cut fetch: %llu resumes, %llu B fetched for a %llu B delta (parts of %llu B)\n",
              static_cast<unsigned long long>(r["resumes"].get<uint64_t>()),
              static_cast<unsigned long long>(r["bytes_fetched"].get<uint64_t>()),
              static_cast<unsigned long long>(bundle_bytes),
              static_cast<unsigned long long>(part_size));
  std::string id = image_id_of(receiver_engine(), via);
  if (engine_ids_are_config_digests(receiver_engine())) {
    EXPECT_EQ(id, ids_["2"]);
  }
  remove_image_cli(receiver_engine(), via);
}

TEST_F(RegistryPullTest, WatchModeLoadsTheNewImage) {
  start_registry({});
  auto published = publish({"1"});
  ASSERT_TRUE(published.ok()) << published.error_output;
  clear_site();
  give_site("1");
  std::vector<std::string> argv{DELTARECVD_BINARY,
                                "--config",
                                "/dev/null",
                                "--engine",
                                receiver_engine(),
                                "--store",
                                (temp_->path() / "store").string(),
                                "--trusted-key",
                                trusted_key_.string(),
                                "--watch",
                                pulled_name(),
                                "--poll-interval",
                                "2"};
  for (const auto& f : registry_flags()) argv.push_back(f);
  auto service = BackgroundProcess::start(argv, temp_->path() / "watch.log");
  ASSERT_TRUE(service);
  EXPECT_TRUE(service->wait_for_log(": delta to", std::chrono::seconds(120))) << service->log();
  expect_site_has_version_2();
  // The next rounds find it up to date; SIGTERM stops it cleanly.
  EXPECT_EQ(service->stop(SIGTERM), 0) << service->log();
}

}  // namespace
}  // namespace deltasync::testing
