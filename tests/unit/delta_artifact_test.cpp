// The delta artifact's schema (common/registry/delta_artifact.h): what
// publish writes must read back exactly, be deterministic (a re-publish is
// the same manifest digest), and anything malformed or foreign must be
// refused by name; and the pull loop's poll delays (jitter, backoff).
#include <gtest/gtest.h>

#include "common/registry/delta_artifact.h"
#include "receiver/pull/watch_loop.h"

namespace deltasync {
namespace {

DeltaArtifactConfig sample_config() {
  DeltaArtifactConfig c;
  c.bundle_format = 2;
  c.target.reference = "app:2.0.0";
  c.target.manifest_digest = Digest::of("manifest");
  c.target.config_digest = Digest::of("config2");
  c.target.diff_ids = {Digest::of("l1"), Digest::of("l2")};
  c.base.reference = "app:1.0.0";
  c.base.config_digest = Digest::of("config1");
  c.base.diff_ids = {Digest::of("l1")};
  c.bundle_digest = Digest::of("bundle");
  c.bundle_size = 12345;
  c.part_size = 4096;
  return c;
}

DeltaArtifactManifest sample_manifest() {
  DeltaArtifactManifest m;
  m.config = {kDeltaConfigMediaType, Digest::of("cfg"), 300, "", {}};
  m.parts = {{kBundlePartMediaType, Digest::of("p1"), 4096, "", {}},
             {kBundlePartMediaType, Digest::of("p2"), 100, "", {}}};
  m.subject = {media_type::kDockerManifest, Digest::of("manifest"), 527, "", {}};
  m.annotations = {{kAnnotationBaseConfig, Digest::of("config1").str()}};
  return m;
}

TEST(DeltaArtifactTest, ConfigRoundTripsAndIsDeterministic) {
  auto c = sample_config();
  std::string json = c.to_json();
  EXPECT_EQ(json, sample_config().to_json());
  auto back = DeltaArtifactConfig::parse(json);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->to_json(), json);
  EXPECT_EQ(back->target.diff_ids, c.target.diff_ids);
  EXPECT_EQ(*back->target.manifest_digest, *c.target.manifest_digest);
  EXPECT_FALSE(back->base.manifest_digest.has_value());
  EXPECT_EQ(back->bundle_size, 12345u);
  EXPECT_EQ(back->part_size, 4096u);
}

TEST(DeltaArtifactTest, ConfigRefusesNewerFormatsAndDamage) {
  auto c = sample_config();
  c.format = kDeltaArtifactFormat + 1;
  auto newer = DeltaArtifactConfig::parse(c.to_json());
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(newer.error().message().find("upgrade deltarecvd"), std::string::npos);
  std::string json = sample_config().to_json();
  for (std::string bad :
       {std::string("not json"), std::string("[]"), json.substr(0, json.size() / 2)}) {
    auto r = DeltaArtifactConfig::parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  }
  std::string broken = json;
  broken.replace(broken.find("sha256:") + 7, 4, "zzzz");
  auto r = DeltaArtifactConfig::parse(broken);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("delta config"), std::string::npos) << r.error().message();
}

TEST(DeltaArtifactTest, ManifestRoundTripsAndRefusesForeignArtifacts) {
  auto m = sample_manifest();
  std::string json = m.to_json();
  auto back = DeltaArtifactManifest::parse(json);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->to_json(), json);
  EXPECT_EQ(back->parts.size(), 2u);
  EXPECT_EQ(back->subject.digest, Digest::of("manifest"));
  EXPECT_EQ(back->annotations.at(kAnnotationBaseConfig), Digest::of("config1").str());

  std::string foreign = json;
  foreign.replace(foreign.find(kDeltaArtifactType), std::string(kDeltaArtifactType).size(),
                  "application/vnd.example.sbom");
  auto f = DeltaArtifactManifest::parse(foreign);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("not a deltasync delta"), std::string::npos);

  auto wrong_part = sample_manifest();
  wrong_part.parts[1].media_type = "application/octet-stream";
  auto w = DeltaArtifactManifest::parse(wrong_part.to_json());
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message().find("part 2"), std::string::npos) << w.error().message();
}

TEST(DeltaArtifactTest, TagsAreValidAndDistinct) {
  std::string tag = delta_tag(Digest::of("m"), Digest::of("b"));
  EXPECT_LE(tag.size(), 128u);
  EXPECT_EQ(tag.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-._"), std::string::npos);
  EXPECT_NE(tag, delta_tag(Digest::of("m"), Digest::of("c")));
  EXPECT_NE(tag, delta_tag(Digest::of("n"), Digest::of("b")));
  EXPECT_EQ(referrers_tag(Digest::of("m")), "sha256-" + Digest::of("m").hex());
}

TEST(DeltaArtifactTest, ReferrersIndexAddsAndReplaces) {
  RegistryDescriptor a{media_type::kOciManifest,
                       Digest::of("a"),
                       10,
                       kDeltaArtifactType,
                       {{kAnnotationBaseConfig, "x"}}};
  RegistryDescriptor b{media_type::kOciManifest, Digest::of("b"), 20, kDeltaArtifactType, {}};
  auto one = add_to_referrers_index("", a);
  ASSERT_TRUE(one);
  auto two = add_to_referrers_index(*one, b);
  ASSERT_TRUE(two);
  auto again = add_to_referrers_index(*two, a);  // a re-publish replaces, not duplicates
  ASSERT_TRUE(again);
  auto list = parse_index_descriptors(*again);
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].digest, b.digest);
  EXPECT_EQ((*list)[1].digest, a.digest);
  EXPECT_EQ((*list)[1].annotations.at(kAnnotationBaseConfig), "x");
  EXPECT_EQ((*list)[1].artifact_type, kDeltaArtifactType);
  EXPECT_FALSE(add_to_referrers_index("{\"manifests\": 3}", a));
}

RegistryManifest fetched(std::string body, std::string media_type = media_type::kOciManifest) {
  RegistryManifest m;
  m.media_type = std::move(media_type);
  m.digest = Digest::of(body);
  m.body = std::move(body);
  return m;
}

RegistryDescriptor entry_for(const RegistryManifest& m, std::string artifact_type) {
  return {m.media_type, m.digest, m.body.size(), std::move(artifact_type), {}};
}

TEST(DeltaArtifactTest, ReferrersTagEntriesMustNameTheSubject) {
  DeltaArtifactManifest delta = sample_manifest();  // subject: Digest::of("manifest")
  const Digest subject = delta.subject.digest;
  auto ours = fetched(delta.to_json());
  EXPECT_EQ(referrer_entry_problem(entry_for(ours, kDeltaArtifactType), ours, subject),
            std::nullopt);
  // Another subject: a delta of another image listed here by mistake.
  auto problem = referrer_entry_problem(entry_for(ours, kDeltaArtifactType), ours,
                                        Digest::of("another image"));
  ASSERT_TRUE(problem);
  EXPECT_NE(problem->find("its subject is " + subject.str()), std::string::npos) << *problem;
  // A foreign artifact (a signature) with the right subject belongs there.
  std::string signature =
      R"({"schemaVersion":2,"mediaType":")" + std::string(media_type::kOciManifest) +
      R"(","artifactType":"application/vnd.example.sig","config":{}, "layers":[],)"
      R"("subject":{"mediaType":")" +
      media_type::kDockerManifest + R"(","digest":")" + subject.str() + R"(","size":527}})";
  auto sig = fetched(signature);
  EXPECT_EQ(referrer_entry_problem(entry_for(sig, "application/vnd.example.sig"), sig, subject),
            std::nullopt);
  // ...but one claiming to be a delta must be one.
  auto fake = referrer_entry_problem(entry_for(sig, kDeltaArtifactType), sig, subject);
  ASSERT_TRUE(fake);
  EXPECT_NE(fake->find("not a deltasync delta"), std::string::npos) << *fake;
  // No subject at all; a size that is not the manifest's; not a manifest.
  auto plain = fetched(R"({"schemaVersion":2,"layers":[]})");
  auto none = referrer_entry_problem(entry_for(plain, ""), plain, subject);
  ASSERT_TRUE(none);
  EXPECT_NE(none->find("no subject"), std::string::npos) << *none;
  RegistryDescriptor wrong_size = entry_for(ours, kDeltaArtifactType);
  wrong_size.size += 1;
  EXPECT_TRUE(referrer_entry_problem(wrong_size, ours, subject));
  auto config_blob = fetched(delta.to_json(), "application/octet-stream");
  EXPECT_TRUE(
      referrer_entry_problem(entry_for(config_blob, kDeltaArtifactType), config_blob, subject));
  // The entry names other bytes than those fetched.
  RegistryDescriptor elsewhere = entry_for(ours, kDeltaArtifactType);
  elsewhere.digest = Digest::of("x");
  EXPECT_TRUE(referrer_entry_problem(elsewhere, ours, subject));
}

TEST(DeltaArtifactTest, ReferrersTagMustHoldAnIndexToBeRewritten) {
  RegistryDescriptor a{media_type::kOciManifest, Digest::of("a"), 10, kDeltaArtifactType, {}};
  std::string index = referrers_index_json({a});
  auto listed = parse_referrers_tag_index(fetched(index, media_type::kOciIndex));
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].digest, a.digest);
  // Served as plain JSON: the body's mediaType decides.
  EXPECT_TRUE(parse_referrers_tag_index(fetched(index, "application/json")));
  // An image manifest someone tagged sha256-<hex>: not ours to replace.
  auto image = parse_referrers_tag_index(fetched(R"({"schemaVersion":2,"mediaType":")" +
                                                     std::string(media_type::kDockerManifest) +
                                                     R"(","layers":[]})",
                                                 media_type::kDockerManifest));
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(image.error().message().find("not an OCI index"), std::string::npos)
      << image.error().message();
  // An index body served under another type, and an index without mediaType.
  EXPECT_FALSE(parse_referrers_tag_index(fetched(index, media_type::kOciManifest)));
  EXPECT_FALSE(parse_referrers_tag_index(fetched(R"({"manifests":[]})", "")));
}

TEST(WatchLoopTest, DelaysJitterAndBackOff) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  // Success: the interval, ±20%.
  EXPECT_EQ(next_poll_delay(seconds(300), 0, 0.0), milliseconds(240000));
  EXPECT_EQ(next_poll_delay(seconds(300), 0, 0.5), milliseconds(300000));
  EXPECT_LT(next_poll_delay(seconds(300), 0, 0.999), milliseconds(360000));
  // Failures: 30 s, 60 s, 120 s ... never beyond the interval or an hour.
  EXPECT_EQ(next_poll_delay(seconds(3600), 1, 0.5), milliseconds(30000));
  EXPECT_EQ(next_poll_delay(seconds(3600), 2, 0.5), milliseconds(60000));
  EXPECT_EQ(next_poll_delay(seconds(3600), 3, 0.5), milliseconds(120000));
  EXPECT_EQ(next_poll_delay(seconds(3600), 30, 0.5), milliseconds(3600000));
  EXPECT_EQ(next_poll_delay(seconds(86400), 30, 0.5), milliseconds(3600000));
  EXPECT_EQ(next_poll_delay(seconds(10), 5, 0.5), milliseconds(10000));
}

}  // namespace
}  // namespace deltasync
