// The distribution identity (common/image/distribution.h) and what makes it
// travel: the deltasync-gzip helpers (common/codec/go_gzip.h), the blob
// recipes the sender proves and the site replays (common/image/blob_recipes.h),
// the wire codec (common/protocol/distribution_codec.h) and the OCI layout an
// exact load is made of. Layers are real tars made by `tar`; OCI layouts are
// written here with the layer compressed by the helper itself, by zlib, or
// left plain. No engine: the e2e suites load the result (bundle_apply_test,
// daemon_transfer_test with DELTASYNC_TEST_EXPECT_SAME_ID).
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "common/codec/compression.h"
#include "common/codec/go_gzip.h"
#include "common/crypto/digest.h"
#include "common/image/blob_recipes.h"
#include "common/image/image.h"
#include "common/image/oci_layout_writer.h"
#include "common/io/file.h"
#include "common/protocol/distribution_codec.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_whole(const fs::path& path) {
  auto data = read_small_file(path, 64 << 20);
  EXPECT_TRUE(data) << path;
  return data ? *data : std::string();
}

std::string gunzip(std::string_view data) {
  auto source = make_gunzip_source(std::make_unique<MemorySource>(data), "test");
  auto out = read_all(*source, 64 << 20);
  EXPECT_TRUE(out) << (out ? "" : out.error().message());
  return out ? *out : std::string();
}

std::string helper_gzip(const GoGzip::Helper& helper, std::string_view plain) {
  MemorySource source(plain);
  StringSink sink;
  auto done = GoGzip::compress(helper, -1, source, sink);
  EXPECT_TRUE(done) << (done ? "" : done.error().message());
  return sink.data();
}

class DistributionIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "distribution-test-");
    ASSERT_TRUE(dir);
    dir_ = std::make_unique<TempDir>(std::move(*dir));
#ifdef DELTASYNC_EXPECT_GZIP_HELPERS
    ASSERT_FALSE(GoGzip::installed().helpers().empty())
        << "the build made deltasync-gzip helpers, but none was found next to the test";
#else
    if (GoGzip::installed().helpers().empty()) GTEST_SKIP() << "built without a Go toolchain";
#endif
  }
  const fs::path& dir() const {
    return dir_->path();
  }

  // A layer tar made by `tar` from a few files.
  std::string make_layer(unsigned seed) {
    fs::path root = dir() / ("root-" + std::to_string(seed));
    write_file(root / "app/data.bin", random_bytes(300000, seed));
    write_file(root / "app/notes.txt", random_text(200000, seed + 1) + "\nrepeat repeat repeat\n");
    write_file(root / "etc/version", "1.0." + std::to_string(seed) + "\n");
    fs::path tar = dir() / ("layer-" + std::to_string(seed) + ".tar");
    auto made = run_command({"tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C",
                             root.string(), "-cf", tar.string(), "."});
    EXPECT_TRUE(made.ok()) << made.error_output;
    return read_whole(tar);
  }

  // oci:DIR with one manifest (under an index, as BuildKit writes it) whose
  // layers are the given blobs of the given plain tars.
  fs::path write_layout(const std::vector<std::string>& plain,
                        const std::vector<std::string>& blobs,
                        const std::vector<std::string>& media_types) {
    fs::path layout = dir() / "layout";
    fs::create_directories(layout / "blobs/sha256");
    auto put = [&](const std::string& bytes) {
      Digest d = Digest::of(bytes);
      write_file(layout / "blobs/sha256" / d.hex(), bytes);
      return d;
    };
    json diff_ids = json::array();
    for (const auto& p : plain) diff_ids.push_back(Digest::of(p).str());
    std::string config = json{{"architecture", "amd64"},
                              {"os", "linux"},
                              {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}}
                             .dump();
    Digest config_digest = put(config);
    json layers = json::array();
    for (size_t i = 0; i < blobs.size(); ++i) {
      layers.push_back({{"mediaType", media_types[i]},
                        {"digest", put(blobs[i]).str()},
                        {"size", blobs[i].size()}});
    }
    std::string manifest = json{
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
        {"config",
         {{"mediaType", "application/vnd.oci.image.config.v1+json"},
          {"digest", config_digest.str()},
          {"size", config.size()}}},
        {"layers", layers}}.dump(3);
    Digest manifest_digest = put(manifest);
    std::string index = json{{"schemaVersion", 2},
                             {"mediaType", "application/vnd.oci.image.index.v1+json"},
                             {"manifests",
                              {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                {"digest", manifest_digest.str()},
                                {"size", manifest.size()},
                                {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}}}}}
                            .dump(3);
    Digest index_digest = put(index);
    write_file(
        layout / "index.json",
        json{{"schemaVersion", 2},
             {"manifests",
              {{{"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"digest", index_digest.str()},
                {"size", index.size()},
                {"annotations", {{"io.containerd.image.name", "docker.io/library/app:2"}}}}}}}
            .dump());
    write_file(layout / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    index_digest_ = index_digest;
    manifest_digest_ = manifest_digest;
    return layout;
  }

  std::unique_ptr<ImageReader> open_layout(const fs::path& layout) {
    auto ref = ImageRef::parse("oci:" + layout.string());
    EXPECT_TRUE(ref);
    auto reader = open_image(*ref, nullptr);
    EXPECT_TRUE(reader) << (reader ? "" : reader.error().message());
    return reader ? std::move(*reader) : nullptr;
  }

  std::unique_ptr<TempDir> dir_;
  Digest index_digest_, manifest_digest_;
};

TEST_F(DistributionIdentityTest, HelpersWriteGoGzipThatAnyGunzipReads) {
  std::string plain = make_layer(1);
  for (const auto& helper : GoGzip::installed().helpers()) {
    SCOPED_TRACE(helper.go_version);
    EXPECT_EQ(helper.flavor.size(), 16u);
    std::string packed = helper_gzip(helper, plain);
    // compress/gzip's header: no name, no mtime, OS 255 (what BuildKit writes).
    ASSERT_GE(packed.size(), 10u);
    EXPECT_EQ(packed.substr(0, 10), std::string("\x1f\x8b\x08\0\0\0\0\0\0\xff", 10));
    EXPECT_LT(packed.size(), plain.size());
    EXPECT_EQ(gunzip(packed), plain);
    // Deterministic: the same input gives the same bytes.
    EXPECT_EQ(helper_gzip(helper, plain), packed);
  }
}

TEST_F(DistributionIdentityTest, HelpersThatDoNotWorkAreNotOffered) {
  fs::path helpers = dir() / "helpers";
  // Answers -version but fails to compress; and one that is not a program.
  write_file(helpers / "deltasync-gzip-go9.9",
             "#!/bin/sh\nif [ \"$1\" = -version ]; then echo go9.9; exit 0; fi\nexit 3\n");
  ::chmod((helpers / "deltasync-gzip-go9.9").c_str(), 0755);
  write_file(helpers / "deltasync-gzip-broken", "not a program");
  EXPECT_TRUE(GoGzip::in_directory(helpers).helpers().empty());
  EXPECT_TRUE(GoGzip::in_directory(dir() / "no-such-dir").helpers().empty());
  EXPECT_EQ(GoGzip::in_directory(helpers).describe(), "none");
}

TEST_F(DistributionIdentityTest, SenderProvesRecipesAndSiteRebuildsTheBlobs) {
  const GoGzip& gzip = GoGzip::installed();
  const GoGzip::Helper& helper = gzip.helpers().front();
  std::string tar_a = make_layer(2), tar_b = make_layer(3), tar_c = make_layer(4);
  // Layer 1 by Go's gzip (BuildKit's case), 2 by zlib (no Go flavor writes
  // it), 3 uncompressed (digest = diff_id).
  std::string by_go = helper_gzip(helper, tar_a);
  StringSink zlib_out;
  {
    auto sink = make_gzip_sink(zlib_out, 6);
    ASSERT_TRUE(sink->write(tar_b));
    ASSERT_TRUE(sink->finish());
  }
  fs::path layout = write_layout(
      {tar_a, tar_b, tar_c}, {by_go, zlib_out.data(), tar_c},
      {"application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+gzip",
       "application/vnd.oci.image.layer.v1.tar"});
  auto reader = open_layout(layout);
  ASSERT_TRUE(reader);
  ASSERT_TRUE(reader->info().distribution);
  DistributionIdentity identity = *reader->info().distribution;
  EXPECT_EQ(identity.target.digest, index_digest_);
  EXPECT_EQ(identity.manifest_digest, manifest_digest_);
  EXPECT_EQ(identity.platform, "linux/amd64");
  ASSERT_EQ(identity.layers.size(), 3u);
  EXPECT_TRUE(identity.layers[2].uncompressed());
  EXPECT_EQ(identity.unreproducible_layers(), (std::vector<size_t>{1, 2}));

  auto search = find_blob_recipes(*reader, identity, gzip);
  ASSERT_TRUE(search) << search.error().message();
  EXPECT_EQ(search->layers_tried, 2u);
  EXPECT_EQ(search->layers_reproduced, 1u);
  ASSERT_TRUE(identity.layers[0].recipe);
  EXPECT_EQ(identity.layers[0].recipe->flavor, helper.flavor);
  EXPECT_FALSE(identity.layers[1].recipe);
  EXPECT_EQ(identity.unreproducible_layers(), (std::vector<size_t>{2}));
  EXPECT_EQ(identity.unreproducible_bytes(), zlib_out.data().size());

  // The site: the recipe rebuilds the blob, digest checked.
  MemorySource tar(tar_a);
  HashingSink rebuilt;
  ASSERT_TRUE(rebuild_blob(identity.layers[0], tar, rebuilt, gzip));
  EXPECT_EQ(rebuilt.digest(), identity.layers[0].blob.digest);
  // A recipe that does not give the blob is a verification failure...
  DistributionLayer wrong_level = identity.layers[0];
  wrong_level.recipe->level = 1;
  MemorySource tar2(tar_a);
  HashingSink discard;
  auto mismatch = rebuild_blob(wrong_level, tar2, discard, gzip);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kVerifyFailed) << mismatch.error().message();
  // ...and a flavor this site lacks is named.
  DistributionLayer unknown = identity.layers[0];
  unknown.recipe->flavor = "0123456789abcdef";
  MemorySource tar3(tar_a);
  auto missing = rebuild_blob(unknown, tar3, discard, gzip);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(missing.error().message().find("0123456789abcdef"), std::string::npos);
}

TEST_F(DistributionIdentityTest, ProvedRecipesAreKeptForLaterRuns) {
  std::string tar = make_layer(6);
  std::string by_go = helper_gzip(GoGzip::installed().helpers().front(), tar);
  fs::path layout = write_layout({tar}, {by_go}, {"application/vnd.oci.image.layer.v1.tar+gzip"});
  fs::path cache = dir() / "recipes";
  auto reader = open_layout(layout);
  ASSERT_TRUE(reader && reader->info().distribution);
  DistributionIdentity first = *reader->info().distribution;
  auto proved = find_blob_recipes(*reader, first, GoGzip::installed(), cache);
  ASSERT_TRUE(proved);
  EXPECT_EQ(proved->layers_reproduced, 1u);
  EXPECT_EQ(proved->layers_from_cache, 0u);
  EXPECT_GT(proved->plain_bytes, 0u);
  DistributionIdentity second = *reader->info().distribution;
  auto reused = find_blob_recipes(*reader, second, GoGzip::installed(), cache);
  ASSERT_TRUE(reused);
  EXPECT_EQ(reused->layers_from_cache, 1u);
  EXPECT_EQ(reused->plain_bytes, 0u);  // nothing compressed again
  EXPECT_EQ(second.layers[0].recipe->flavor, first.layers[0].recipe->flavor);
  // A kept proof for a flavor this machine lacks is proved again.
  write_file(cache / first.layers[0].blob.digest.hex(), "0123456789abcdef -1\n");
  DistributionIdentity third = *reader->info().distribution;
  auto again = find_blob_recipes(*reader, third, GoGzip::installed(), cache);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->layers_from_cache, 0u);
  EXPECT_EQ(third.layers[0].recipe->flavor, first.layers[0].recipe->flavor);
}

TEST_F(DistributionIdentityTest, WireCodecRoundTripsAndRefusesWhatDoesNotFit) {
  std::string tar_a = make_layer(5);
  std::string by_go = helper_gzip(GoGzip::installed().helpers().front(), tar_a);
  fs::path layout = write_layout({tar_a}, {by_go}, {"application/vnd.oci.image.layer.v1.tar+gzip"});
  auto reader = open_layout(layout);
  ASSERT_TRUE(reader && reader->info().distribution);
  DistributionIdentity identity = *reader->info().distribution;
  ASSERT_TRUE(find_blob_recipes(*reader, identity, GoGzip::installed()));
  ASSERT_TRUE(identity.reproducible());
  const std::vector<Digest> chain = reader->info().diff_ids();

  std::string encoded = encode_distribution(identity);
  EXPECT_LT(encoded.size(), 2048u);
  auto decoded = decode_distribution(encoded, chain);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->target.digest, identity.target.digest);
  EXPECT_EQ(decoded->target.media_type, identity.target.media_type);
  EXPECT_EQ(decoded->manifest_digest, identity.manifest_digest);
  EXPECT_EQ(decoded->documents, identity.documents);
  ASSERT_EQ(decoded->layers.size(), 1u);
  EXPECT_EQ(decoded->layers[0].blob.digest, identity.layers[0].blob.digest);
  EXPECT_EQ(decoded->layers[0].recipe->flavor, identity.layers[0].recipe->flavor);

  // Another image's layers, garbage, and a set without its manifest.
  EXPECT_FALSE(decode_distribution(encoded, {chain[0], chain[0]}));
  EXPECT_FALSE(decode_distribution("not zstd at all", chain));
  DistributionIdentity no_manifest = identity;
  no_manifest.documents.pop_back();
  auto refused = decode_distribution(encode_distribution(no_manifest), chain);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("documents"), std::string::npos);
}

TEST_F(DistributionIdentityTest, LayoutWriterChecksEveryBlobAndNamesTheTarget) {
  StringSink out;
  OciLayoutWriter writer(out);
  std::string doc = R"({"schemaVersion":2})";
  ASSERT_TRUE(writer.add_blob(doc));
  std::string payload = random_bytes(5000, 9);
  MemorySource wrong(payload);
  auto bad = writer.add_blob(Digest::of("something else"), payload.size(), wrong);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kVerifyFailed);

  StringSink out2;
  OciLayoutWriter writer2(out2);
  ASSERT_TRUE(writer2.add_blob(doc));
  BlobDescriptor absent{"application/vnd.oci.image.index.v1+json", Digest::of("x"), 1};
  EXPECT_FALSE(writer2.finish(absent, {}));
  BlobDescriptor target{"application/vnd.oci.image.index.v1+json", Digest::of(doc), doc.size()};
  StringSink out3;
  OciLayoutWriter writer3(out3);
  ASSERT_TRUE(writer3.add_blob(doc));
  ASSERT_TRUE(writer3.finish(target, {"app:2"}));
  // A real tar: `tar` lists what we wrote.
  fs::path archive = dir() / "layout.tar";
  write_file(archive, out3.data());
  auto listed = run_command({"tar", "-tf", archive.string()});
  ASSERT_TRUE(listed.ok()) << listed.error_output;
  EXPECT_NE(listed.output.find("blobs/sha256/" + Digest::of(doc).hex()), std::string::npos);
  EXPECT_NE(listed.output.find("index.json"), std::string::npos);
  EXPECT_NE(listed.output.find("oci-layout"), std::string::npos);
}

}  // namespace
}  // namespace deltasync::testing
