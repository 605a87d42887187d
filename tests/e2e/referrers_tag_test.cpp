// publish's referrers tag index (sender/publish/referrers_tag_update.h)
// against a real distribution 2.8, which has no referrers API and no
// conditional PUT: entries that do not belong are dropped and other tools'
// referrers kept, a tag holding an image is left alone, and publishers
// updating the same index at the same time all end up listed.
#include <algorithm>
#include <barrier>
#include <cstdio>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/registry/delta_artifact.h"
#include "sender/publish/referrers_tag_update.h"
#include "tests/support/stub_http_server.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_registry.h"

namespace deltasync::testing {
namespace {

using Json = nlohmann::json;
const std::string kRepo = "team/app";

std::unique_ptr<RegistryClient> client_for(const TestRegistry& registry) {
  auto client = RegistryClient::create(registry.host(), registry.client_options());
  EXPECT_TRUE(client) << client.error().message();
  return client ? std::move(*client) : nullptr;
}

// Pushes `body` by digest; the descriptor an index lists it with.
RegistryDescriptor put(RegistryClient& client, const std::string& body,
                       const std::string& artifact_type = "",
                       const std::string& media_type = media_type::kOciManifest) {
  auto digest = client.put_manifest(kRepo, Digest::of(body).str(), media_type, body);
  EXPECT_TRUE(digest) << digest.error().message();
  return {media_type, Digest::of(body), body.size(), artifact_type, {}};
}

// An image the deltas refer to: config + one layer + manifest.
RegistryDescriptor push_image(RegistryClient& client, unsigned seed) {
  std::string config = R"({"architecture":"amd64","os":"linux","seed":)" + std::to_string(seed) +
                       R"(,"rootfs":{"type":"layers","diff_ids":[]}})";
  std::string layer = random_bytes(1000, seed);
  EXPECT_TRUE(client.push_blob(kRepo, config));
  EXPECT_TRUE(client.push_blob(kRepo, layer));
  Json m = {{"schemaVersion", 2},
            {"mediaType", media_type::kOciManifest},
            {"config",
             {{"mediaType", media_type::kOciConfig},
              {"digest", Digest::of(config).str()},
              {"size", config.size()}}},
            {"layers", Json::array({{{"mediaType", media_type::kOciLayerGzip},
                                     {"digest", Digest::of(layer).str()},
                                     {"size", layer.size()}}})}};
  return put(client, m.dump());
}

// A delta artifact manifest for `subject` (its blobs pushed first).
RegistryDescriptor push_delta(RegistryClient& client, const RegistryDescriptor& subject,
                              unsigned seed) {
  std::string config = R"({"format":1,"seed":)" + std::to_string(seed) + "}";
  std::string part = random_bytes(500, seed + 1000);
  EXPECT_TRUE(client.push_blob(kRepo, config));
  EXPECT_TRUE(client.push_blob(kRepo, part));
  DeltaArtifactManifest m;
  m.config = {kDeltaConfigMediaType, Digest::of(config), config.size(), "", {}};
  m.parts = {{kBundlePartMediaType, Digest::of(part), part.size(), "", {}}};
  m.subject = {subject.media_type, subject.digest, subject.size, "", {}};
  m.annotations = {{kAnnotationBaseConfig, Digest::of("base" + std::to_string(seed)).str()}};
  RegistryDescriptor d = put(client, m.to_json(), kDeltaArtifactType);
  d.annotations = m.annotations;
  return d;
}

// Another tool's referrer (a signature) of `subject`.
RegistryDescriptor push_signature(RegistryClient& client, const RegistryDescriptor& subject) {
  std::string empty = "{}";
  EXPECT_TRUE(client.push_blob(kRepo, empty));
  Json m = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"artifactType", "application/vnd.example.signature"},
      {"config",
       {{"mediaType", media_type::kOciEmpty}, {"digest", Digest::of(empty).str()}, {"size", 2}}},
      {"layers", Json::array()},
      {"subject",
       {{"mediaType", subject.media_type},
        {"digest", subject.digest.str()},
        {"size", subject.size}}}};
  return put(client, m.dump(), "application/vnd.example.signature");
}

std::vector<Digest> listed(RegistryClient& client, const Digest& subject) {
  auto held = client.get_manifest(kRepo, referrers_tag(subject));
  EXPECT_TRUE(held && *held) << (held ? "absent" : held.error().message());
  if (!held || !*held) return {};
  EXPECT_EQ((*held)->media_type, media_type::kOciIndex);
  auto entries = parse_index_descriptors((*held)->body);
  EXPECT_TRUE(entries) << entries.error().message();
  std::vector<Digest> out;
  if (entries)
    for (const auto& d : *entries) out.push_back(d.digest);
  return out;
}

TEST(ReferrersTagTest, DropsEntriesThatDoNotBelongAndKeepsOtherTools) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  RegistryDescriptor target = push_image(*client, 1);
  RegistryDescriptor other_image = push_image(*client, 2);
  RegistryDescriptor ours_before = push_delta(*client, target, 10);
  RegistryDescriptor signature = push_signature(*client, target);
  RegistryDescriptor misfiled = push_delta(*client, other_image, 11);  // another subject
  RegistryDescriptor gone = push_delta(*client, target, 13);           // deleted below
  // As a careless or older publisher left it: duplicates included.
  std::string index =
      referrers_index_json({ours_before, signature, misfiled, gone, ours_before, target});
  auto put_index =
      client->put_manifest(kRepo, referrers_tag(target.digest), media_type::kOciIndex, index);
  ASSERT_TRUE(put_index) << put_index.error().message();
  // A delta deleted after it was listed (the registry refuses an index
  // naming a manifest it lacks, so it has to happen in that order).
  CommandResult deleted = run_command(
      {"python3", "-c",
       "import sys,urllib.request\n"
       "r = urllib.request.Request(sys.argv[1], method='DELETE')\n"
       "print(urllib.request.urlopen(r, timeout=10).status)",
       "http://" + registry->host() + "/v2/" + kRepo + "/manifests/" + gone.digest.str()});
  ASSERT_TRUE(deleted.ok()) << deleted.error_output;
  auto absent = client->head_manifest(kRepo, gone.digest.str());
  ASSERT_TRUE(absent && !*absent);

  RegistryDescriptor ours = push_delta(*client, target, 12);
  auto update = update_referrers_tag(*client, kRepo, target.digest, ours);
  ASSERT_TRUE(update) << update.error().message();
  EXPECT_EQ(update->rounds, 1);
  EXPECT_EQ(update->entries, 3u);
  EXPECT_EQ(listed(*client, target.digest),
            (std::vector<Digest>{ours_before.digest, signature.digest, ours.digest}));
  ASSERT_EQ(update->dropped.size(), 3u);
  auto dropped = [&](const Digest& d, const std::string& why) {
    for (const auto& line : update->dropped)
      if (line.starts_with(d.str() + ": ") && line.find(why) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(dropped(misfiled.digest, "its subject is " + other_image.digest.str()));
  EXPECT_TRUE(dropped(gone.digest, "no such manifest"));
  EXPECT_TRUE(dropped(target.digest, "no subject"));  // the image itself is no referrer

  // Again with the same entry: nothing changes (a re-publish).
  auto again = update_referrers_tag(*client, kRepo, target.digest, ours);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(again->dropped.empty());
  EXPECT_EQ(listed(*client, target.digest),
            (std::vector<Digest>{ours_before.digest, signature.digest, ours.digest}));
}

TEST(ReferrersTagTest, WrongSizeEntryIsReplacedByTheRightOne) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  RegistryDescriptor target = push_image(*client, 3);
  RegistryDescriptor delta = push_delta(*client, target, 20);
  RegistryDescriptor wrong = delta;
  wrong.size += 7;
  RegistryDescriptor other = push_delta(*client, target, 21);
  RegistryDescriptor other_wrong = other;
  other_wrong.size -= 1;
  ASSERT_TRUE(client->put_manifest(kRepo, referrers_tag(target.digest), media_type::kOciIndex,
                                   referrers_index_json({other_wrong, wrong})));
  auto update = update_referrers_tag(*client, kRepo, target.digest, delta);
  ASSERT_TRUE(update) << update.error().message();
  // Ours replaces its own stale entry; the other's wrong entry is dropped.
  EXPECT_EQ(listed(*client, target.digest), (std::vector<Digest>{delta.digest}));
  ASSERT_EQ(update->dropped.size(), 1u);
  EXPECT_NE(update->dropped[0].find("listed with size"), std::string::npos) << update->dropped[0];
}

TEST(ReferrersTagTest, ATagHoldingSomethingElseIsLeftAlone) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  RegistryDescriptor target = push_image(*client, 4);
  RegistryDescriptor image = push_image(*client, 5);
  auto body = client->get_manifest(kRepo, image.digest.str());
  ASSERT_TRUE(body && *body);
  ASSERT_TRUE(client->put_manifest(kRepo, referrers_tag(target.digest), media_type::kOciManifest,
                                   (*body)->body));
  RegistryDescriptor delta = push_delta(*client, target, 30);
  auto update = update_referrers_tag(*client, kRepo, target.digest, delta);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(update.error().message().find("not an OCI index"), std::string::npos)
      << update.error().message();
  auto still = client->head_manifest(kRepo, referrers_tag(target.digest));
  ASSERT_TRUE(still && *still);
  EXPECT_EQ((*still)->digest, image.digest);
}

TEST(ReferrersTagTest, ATransient500OnTheTagIsTriedAgain) {
  // distribution 2.8's filesystem storage rewrites a tag's link in place; a
  // GET of the tag while another publisher writes it answers 500 (seen in
  // the concurrent test below, under load). A stub in front of nothing
  // gives that answer on demand: the first GET of the tag is a 500.
  const Digest subject = Digest::of("target manifest");
  const std::string path = "/v2/" + kRepo + "/manifests/" + referrers_tag(subject);
  std::mutex mutex;
  std::string stored;
  int gets = 0;
  StubHttpServer stub([&](const StubRequest& r) -> StubResponse {
    std::lock_guard lock(mutex);
    if (r.target != path) return {404, {}, ""};
    if (r.method == "PUT") {
      stored = r.body;
      return {201, {{"Docker-Content-Digest", Digest::of(stored).str()}}, ""};
    }
    if (++gets == 1)
      return {500,
              {{"Content-Type", "application/json"}},
              R"({"errors":[{"code":"UNKNOWN","message":"unknown error"}]})"};
    if (stored.empty()) return {404, {}, ""};
    return {200, {{"Content-Type", media_type::kOciIndex}}, stored};
  });
  RegistryOptions options;
  options.insecure = true;
  options.docker_config = "/nonexistent/deltasync-test/config.json";
  auto client = RegistryClient::create(stub.host(), options);
  ASSERT_TRUE(client) << client.error().message();
  RegistryDescriptor entry{
      media_type::kOciManifest, Digest::of("delta"), 321, kDeltaArtifactType, {}};
  auto update = update_referrers_tag(**client, kRepo, subject, entry);
  ASSERT_TRUE(update) << update.error().message();
  EXPECT_EQ(update->rounds, 1);
  EXPECT_EQ(gets, 3);  // the 500, the read before the PUT, the check after it
  auto listed_now = parse_index_descriptors(stored);
  ASSERT_TRUE(listed_now) << stored;
  ASSERT_EQ(listed_now->size(), 1u);
  EXPECT_EQ((*listed_now)[0].digest, entry.digest);
}

TEST(ReferrersTagTest, ConcurrentPublishersAllEndUpListed) {
  // Several publishers add their delta to the same index at the same
  // moment, as `deltasend publish` runs for different bases on several
  // build hosts would; distribution 2.8 lets each PUT overwrite the last.
  constexpr int kPublishers = 4;
  auto registry = TestRegistry::start();
  auto setup = client_for(*registry);
  ASSERT_TRUE(setup);
  for (int trial = 0; trial < 3; ++trial) {
    RegistryDescriptor target = push_image(*setup, 100 + trial);
    std::vector<RegistryDescriptor> deltas;
    for (int i = 0; i < kPublishers; ++i)
      deltas.push_back(push_delta(*setup, target, 200 + 10 * trial + i));
    std::vector<std::unique_ptr<RegistryClient>> clients;
    for (int i = 0; i < kPublishers; ++i) clients.push_back(client_for(*registry));
    std::vector<std::optional<Result<ReferrersTagUpdate>>> results(kPublishers);
    std::barrier start(kPublishers);
    std::vector<std::thread> threads;
    for (int i = 0; i < kPublishers; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        results[i] = update_referrers_tag(*clients[i], kRepo, target.digest, deltas[i]);
      });
    }
    for (auto& t : threads) t.join();
    int rounds = 0;
    for (int i = 0; i < kPublishers; ++i) {
      ASSERT_TRUE(*results[i]) << results[i]->error().message();
      rounds += (*results[i])->rounds;
    }
    std::vector<Digest> now = listed(*setup, target.digest);
    for (const auto& d : deltas)
      EXPECT_NE(std::find(now.begin(), now.end(), d.digest), now.end())
          << "trial " << trial << ": " << d.digest.str() << " lost (" << rounds << " rounds)";
    EXPECT_EQ(now.size(), static_cast<size_t>(kPublishers));
    std::printf("trial %d: %d publishers, %d rounds in all\n", trial, kPublishers, rounds);
  }
}

}  // namespace
}  // namespace deltasync::testing
