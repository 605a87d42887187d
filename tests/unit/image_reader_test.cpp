// Image reading and writing without an engine: archives are built here with
// GNU tar, gzip and zstd in the layouts `docker save` writes (legacy and
// OCI-in-tar) and OCI tools write (oci-archive, oci directory, nested image
// indexes), then read with open_image(). Checks image IDs, diff_ids, tags and
// layer contents, that damage (a flipped byte, a cut archive, a missing
// member, bad JSON) gives a clear error and never a crash, and that
// DockerArchiveWriter output reads back identically.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include <gtest/gtest.h>

#include "common/crypto/digest.h"
#include "common/image/image.h"
#include "common/image/manifest.h"
#include "common/io/file.h"
#include "common/tar/tar_entry.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void write_file(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(content.data(), std::streamsize(content.size()));
}

std::string read_file(const fs::path& path) {
  auto content = read_small_file(path, 1 << 30);
  EXPECT_TRUE(content.has_value()) << content.error().message();
  return content.value_or("");
}

void run(const std::string& command) {
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

std::string random_text(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

Digest hash_source(ByteSource& source) {
  HashingSink sink;
  auto copied = copy_all(source, sink);
  EXPECT_TRUE(copied.has_value()) << copied.error().message();
  return sink.digest();
}

struct Layer {
  std::string tar;  // the uncompressed layer tar
  Digest diff_id;
  std::string blob;  // as stored (maybe compressed)
  Digest blob_digest;
  std::string media_type;
};

std::string config_json(const std::vector<Layer>& layers, std::string_view arch = "amd64") {
  json diff_ids = json::array();
  for (const auto& l : layers) diff_ids.push_back(l.diff_id.str());
  json config = {{"architecture", arch},
                 {"os", "linux"},
                 {"config", {{"Env", {"PATH=/usr/bin"}}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  return config.dump();
}

class ImageReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "image-reader-test-");
    ASSERT_TRUE(dir.has_value()) << dir.error().message();
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    root_ = dir_->path();
  }

  // A layer tar made by GNU tar from `files`, compressed as asked.
  Layer make_layer(const std::string& name, const std::map<std::string, std::string>& files,
                   const std::string& compression = "") {
    fs::path tree = root_ / "trees" / name;
    for (const auto& [path, content] : files) write_file(tree / path, content);
    fs::path tar = root_ / "trees" / (name + ".tar");
    run("tar --sort=name --mtime=@1700000000 --owner=0 --group=0 -C " + tree.string() + " -cf " +
        tar.string() + " .");
    Layer layer;
    layer.tar = read_file(tar);
    layer.diff_id = Digest::of(layer.tar);
    layer.media_type = "application/vnd.oci.image.layer.v1.tar";
    if (compression == "gzip") {
      run("gzip -n -k -f " + tar.string());
      layer.blob = read_file(tar.string() + ".gz");
      layer.media_type += "+gzip";
    } else if (compression == "zstd") {
      run("zstd -q -k -f " + tar.string() + " -o " + tar.string() + ".zst");
      layer.blob = read_file(tar.string() + ".zst");
      layer.media_type += "+zstd";
    } else {
      layer.blob = layer.tar;
    }
    layer.blob_digest = Digest::of(layer.blob);
    return layer;
  }

  std::vector<Layer> three_layers() {
    return {
        make_layer("base", {{"etc/os-release", "ID=test\n"},
                            {"usr/bin/tool", random_text(100000, 1)},
                            {"data/marker", "TAMPER-ME-MARKER-0123456789"}}),
        make_layer("gz", {{"app/main.py", "print('hi')\n"}, {"app/big", random_text(50000, 2)}},
                   "gzip"),
        make_layer("zst", {{"app/config.yaml", "a: 1\n"}, {".wh.old", ""}}, "zstd"),
    };
  }

  // The legacy `docker save` layout. `members` orders the tar (default: all,
  // written as "./..." by tar's traversal of ".").
  fs::path make_legacy_archive(const std::vector<Layer>& layers, const std::string& name,
                               json manifest_override = nullptr) {
    fs::path dir = root_ / (name + ".d");
    std::string config = config_json(layers);
    std::string config_name = Digest::of(config).hex() + ".json";
    write_file(dir / config_name, config);
    json layer_paths = json::array();
    for (const auto& l : layers) {
      std::string path = l.diff_id.hex() + "/layer.tar";
      write_file(dir / path, l.tar);
      write_file(dir / l.diff_id.hex() / "VERSION", "1.0");
      layer_paths.push_back(path);
    }
    json manifest = json::array({{{"Config", config_name},
                                  {"RepoTags", {"app:1.0", "reg.example/app:1.0"}},
                                  {"Layers", layer_paths}}});
    if (!manifest_override.is_null()) manifest = manifest_override;
    write_file(dir / "manifest.json", manifest.dump());
    write_file(dir / "repositories", R"({"app":{"1.0":"x"}})");
    fs::path tar = root_ / (name + ".tar");
    // The config first and manifest.json last, as docker save does.
    std::string members = config_name;
    for (const auto& l : layers) members += " " + l.diff_id.hex();
    run("tar -C " + dir.string() + " -cf " + tar.string() + " " + members +
        " repositories manifest.json");
    return tar;
  }

  // An OCI image layout directory (also what newer docker save puts in its
  // tar). Returns the manifest descriptor.
  json write_oci_blobs(const fs::path& dir, const std::vector<Layer>& layers,
                       std::string_view arch = "amd64") {
    std::string config = config_json(layers, arch);
    write_file(dir / "blobs/sha256" / Digest::of(config).hex(), config);
    json layer_descs = json::array();
    for (const auto& l : layers) {
      write_file(dir / "blobs/sha256" / l.blob_digest.hex(), l.blob);
      layer_descs.push_back(
          {{"mediaType", l.media_type}, {"digest", l.blob_digest.str()}, {"size", l.blob.size()}});
    }
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config",
                      {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                       {"digest", Digest::of(config).str()},
                       {"size", config.size()}}},
                     {"layers", layer_descs}};
    std::string bytes = manifest.dump();
    write_file(dir / "blobs/sha256" / Digest::of(bytes).hex(), bytes);
    write_file(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
    return {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
            {"digest", Digest::of(bytes).str()},
            {"size", bytes.size()}};
  }

  fs::path tar_dir(const fs::path& dir, const std::string& name) {
    fs::path tar = root_ / name;
    run("tar -C " + dir.string() + " -cf " + tar.string() + " .");
    return tar;
  }

  std::unique_ptr<ImageReader> open_ok(const std::string& text) {
    auto ref = ImageRef::parse(text);
    EXPECT_TRUE(ref.has_value()) << ref.error().message();
    if (!ref) return nullptr;
    auto reader = open_image(*ref, nullptr);
    EXPECT_TRUE(reader.has_value()) << reader.error().message();
    return reader ? std::move(*reader) : nullptr;
  }

  Error open_error(const std::string& text) {
    auto ref = ImageRef::parse(text);
    if (!ref) return ref.error();
    auto reader = open_image(*ref, nullptr);
    EXPECT_FALSE(reader.has_value()) << text << " opened unexpectedly";
    return reader ? Error(ErrorCode::kInternal, "opened") : reader.error();
  }

  void expect_image(ImageReader& reader, const std::vector<Layer>& layers) {
    const ImageInfo& info = reader.info();
    EXPECT_EQ(info.image_id, Digest::of(config_json(layers, info.architecture)));
    EXPECT_EQ(info.image_id, Digest::of(info.config_bytes));
    ASSERT_EQ(info.layers.size(), layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      EXPECT_EQ(info.layers[i].diff_id, layers[i].diff_id) << i;
      EXPECT_EQ(info.layers[i].blob_size, layers[i].blob.size()) << i;
      auto source = reader.open_layer(i);
      ASSERT_TRUE(source.has_value()) << source.error().message();
      EXPECT_EQ(hash_source(**source), layers[i].diff_id) << "layer " << i;
    }
    EXPECT_EQ(info.os, "linux");
  }

  std::unique_ptr<TempDir> dir_;
  fs::path root_;
};

TEST(ImageRefTest, Transports) {
  auto archive = ImageRef::parse("docker-archive:/x/app.tar");
  ASSERT_TRUE(archive.has_value());
  EXPECT_EQ(archive->transport, ImageRef::Transport::kDockerArchive);
  EXPECT_EQ(archive->location, "/x/app.tar");
  EXPECT_EQ(archive->oci_ref, "");

  auto with_ref = ImageRef::parse("docker-archive:/x/app.tar:app:2");
  ASSERT_TRUE(with_ref.has_value());
  EXPECT_EQ(with_ref->location, "/x/app.tar");
  EXPECT_EQ(with_ref->oci_ref, "app:2");

  auto oci_archive = ImageRef::parse("oci-archive:img.tar");
  ASSERT_TRUE(oci_archive.has_value());
  EXPECT_EQ(oci_archive->transport, ImageRef::Transport::kOciArchive);

  auto oci = ImageRef::parse("oci:/layouts/app:v2");
  ASSERT_TRUE(oci.has_value());
  EXPECT_EQ(oci->transport, ImageRef::Transport::kOciDir);
  EXPECT_EQ(oci->location, "/layouts/app");
  EXPECT_EQ(oci->oci_ref, "v2");

  for (const char* text : {"app:2.0.0", "localhost:5000/team/app:1", "sha256:abc", "app@sha256:ab",
                           "docker-daemon:app:1"}) {
    auto engine = ImageRef::parse(text);
    ASSERT_TRUE(engine.has_value()) << text << ": " << engine.error().message();
    EXPECT_TRUE(engine->is_engine()) << text;
    EXPECT_EQ(engine->original, text);
  }
  EXPECT_EQ(ImageRef::parse("docker-daemon:oci:latest")->location, "oci:latest");

  auto empty = ImageRef::parse("");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(empty.error().message().find("docker-archive:PATH"), std::string::npos);
  for (const char* bad : {"docker-archive:", "oci:", "app name", "-rf", "oci:/d:"}) {
    auto r = ImageRef::parse(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  auto registry = ImageRef::parse("docker://reg/app");
  ASSERT_FALSE(registry.has_value());
  EXPECT_EQ(registry.error().code(), ErrorCode::kUnsupported);
}

TEST(ImageRefTest, FamiliarReferences) {
  EXPECT_EQ(familiar_reference("docker.io/library/app:1"), "app:1");
  EXPECT_EQ(familiar_reference("docker.io/team/app"), "team/app:latest");
  EXPECT_EQ(familiar_reference("localhost:5000/app"), "localhost:5000/app:latest");
  EXPECT_TRUE(reference_matches("app", "docker.io/library/app:latest"));
  EXPECT_FALSE(reference_matches("app:2", "docker.io/library/app:1"));
}

TEST_F(ImageReaderTest, EngineReferenceWithoutEngine) {
  Error error = open_error("app:1.0");
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(error.message().find("engine"), std::string::npos) << error.message();
}

TEST_F(ImageReaderTest, LegacyDockerArchive) {
  std::vector<Layer> layers = three_layers();
  for (auto& l : layers) l.blob = l.tar;  // docker save stores plain layer.tar
  fs::path tar = make_legacy_archive(layers, "legacy");
  auto reader = open_ok("docker-archive:" + tar.string());
  ASSERT_TRUE(reader);
  expect_image(*reader, layers);
  EXPECT_EQ(reader->info().tags, (std::vector<std::string>{"app:1.0", "reg.example/app:1.0"}));
  EXPECT_EQ(reader->info().diff_ids(),
            (std::vector<Digest>{layers[0].diff_id, layers[1].diff_id, layers[2].diff_id}));
  EXPECT_EQ(reader->info().architecture, "amd64");
  EXPECT_EQ(reader->describe(), "docker-archive:" + tar.string());

  // Same archive with "./"-prefixed member names (tar -C dir .).
  fs::path dotted = tar_dir(root_ / "legacy.d", "legacy-dotted.tar");
  auto reader2 = open_ok("docker-archive:" + dotted.string());
  ASSERT_TRUE(reader2);
  expect_image(*reader2, layers);

  // Selecting by tag works; an unknown tag is kNotFound naming what is there.
  EXPECT_TRUE(open_ok("docker-archive:" + tar.string() + ":app:1.0"));
  Error error = open_error("docker-archive:" + tar.string() + ":app:9");
  EXPECT_EQ(error.code(), ErrorCode::kNotFound);
  EXPECT_NE(error.message().find("app:1.0"), std::string::npos) << error.message();
}

TEST_F(ImageReaderTest, LegacyArchiveWithSymlinkedDuplicateLayer) {
  // docker save stores a layer that occurs twice once, and the second
  // occurrence as "<id>/layer.tar -> ../<first-id>/layer.tar".
  std::vector<Layer> base = three_layers();
  std::vector<Layer> layers = {base[0], base[1], base[0]};
  for (auto& l : layers) l.blob = l.tar;
  fs::path dir = root_ / "dup.d";
  std::string config = config_json(layers);
  write_file(dir / (Digest::of(config).hex() + ".json"), config);
  write_file(dir / "id1/layer.tar", layers[0].tar);
  write_file(dir / "id2/layer.tar", layers[1].tar);
  fs::create_directories(dir / "id3");
  fs::create_symlink("../id1/layer.tar", dir / "id3/layer.tar");
  write_file(dir / "manifest.json",
             json::array({{{"Config", Digest::of(config).hex() + ".json"},
                           {"RepoTags", {"dup:1"}},
                           {"Layers", {"id1/layer.tar", "id2/layer.tar", "id3/layer.tar"}}}})
                 .dump());
  // The link comes before its target in this archive.
  fs::path tar = root_ / "dup.tar";
  run("tar -C " + dir.string() + " -cf " + tar.string() + " id3 manifest.json " +
      Digest::of(config).hex() + ".json id2 id1");
  auto reader = open_ok("docker-archive:" + tar.string());
  ASSERT_TRUE(reader);
  expect_image(*reader, layers);

  // A link pointing out of the archive names nothing.
  fs::remove(dir / "id3/layer.tar");
  fs::create_symlink("../../id1/layer.tar", dir / "id3/layer.tar");
  run("tar -C " + dir.string() + " -cf " + tar.string() + " .");
  EXPECT_EQ(open_error("docker-archive:" + tar.string()).code(), ErrorCode::kCorrupt);
}

TEST_F(ImageReaderTest, OciInTarDockerArchiveWithoutManifestJson) {
  std::vector<Layer> layers = three_layers();
  fs::path dir = root_ / "oci-in-tar";
  json desc = write_oci_blobs(dir, layers);
  desc["annotations"] = {{"io.containerd.image.name", "docker.io/library/app:2"},
                         {"org.opencontainers.image.ref.name", "2"}};
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  fs::path tar = tar_dir(dir, "oci-in-tar.tar");

  for (std::string text :
       {"docker-archive:" + tar.string(), "oci-archive:" + tar.string(), "oci:" + dir.string(),
        "oci:" + dir.string() + ":2", "oci-archive:" + tar.string() + ":app:2"}) {
    SCOPED_TRACE(text);
    auto reader = open_ok(text);
    ASSERT_TRUE(reader);
    expect_image(*reader, layers);
    EXPECT_EQ(reader->info().tags, std::vector<std::string>{"app:2"});
    EXPECT_EQ(reader->info().layers[1].blob_name, "blobs/sha256/" + layers[1].blob_digest.hex());
  }
}

TEST_F(ImageReaderTest, OciInTarWithDockerManifestJson) {
  // Docker 25+ writes both: manifest.json pointing into blobs/sha256.
  std::vector<Layer> layers = three_layers();
  fs::path dir = root_ / "docker25";
  json desc = write_oci_blobs(dir, layers);
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  std::string config = config_json(layers);
  json layer_paths = json::array();
  for (const auto& l : layers) layer_paths.push_back("blobs/sha256/" + l.blob_digest.hex());
  write_file(dir / "manifest.json",
             json::array({{{"Config", "blobs/sha256/" + Digest::of(config).hex()},
                           {"RepoTags", {"app:25"}},
                           {"Layers", layer_paths}}})
                 .dump());
  fs::path tar = tar_dir(dir, "docker25.tar");
  auto reader = open_ok("docker-archive:" + tar.string());
  ASSERT_TRUE(reader);
  expect_image(*reader, layers);
  EXPECT_EQ(reader->info().tags, std::vector<std::string>{"app:25"});
}

TEST_F(ImageReaderTest, NestedIndexPicksHostPlatform) {
  std::vector<Layer> layers = three_layers();
  fs::path dir = root_ / "nested";
  json host = write_oci_blobs(dir, layers, host_architecture());
  host["platform"] = {{"os", "linux"}, {"architecture", host_architecture()}};
  // Another platform and an attestation whose blobs the layout lacks (as in
  // a docker save of a multi-platform image), and one that is present.
  std::vector<Layer> other_layers = {make_layer("other", {{"x", "other"}})};
  json other = write_oci_blobs(dir, other_layers, "riscv64");
  other["platform"] = {{"os", "linux"}, {"architecture", "riscv64"}};
  json absent = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                 {"digest", Digest::of("absent").str()},
                 {"size", 100},
                 {"platform", {{"os", "linux"}, {"architecture", "s390x"}}}};
  json attestation = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"digest", Digest::of("att").str()},
                      {"size", 100},
                      {"annotations", {{"vnd.docker.reference.type", "attestation-manifest"}}},
                      {"platform", {{"os", "unknown"}, {"architecture", "unknown"}}}};
  json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests", {absent, other, host, attestation}}};
  std::string index_bytes = index.dump();
  write_file(dir / "blobs/sha256" / Digest::of(index_bytes).hex(), index_bytes);
  json top = {{"mediaType", "application/vnd.oci.image.index.v1+json"},
              {"digest", Digest::of(index_bytes).str()},
              {"size", index_bytes.size()},
              {"annotations", {{"io.containerd.image.name", "docker.io/team/multi:3"}}}};
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {top}}}).dump());

  auto reader = open_ok("oci:" + dir.string());
  ASSERT_TRUE(reader);
  expect_image(*reader, layers);
  EXPECT_EQ(reader->info().tags, std::vector<std::string>{"team/multi:3"});
  EXPECT_EQ(reader->info().architecture, host_architecture());
}

TEST_F(ImageReaderTest, SeveralImagesNeedASelector) {
  std::vector<Layer> a = {make_layer("a", {{"a", "a"}})};
  std::vector<Layer> b = {make_layer("b", {{"b", "b"}})};
  fs::path dir = root_ / "two";
  json da = write_oci_blobs(dir, a);
  da["annotations"] = {{"org.opencontainers.image.ref.name", "reg.example/a:1"}};
  json db = write_oci_blobs(dir, b);
  db["annotations"] = {{"org.opencontainers.image.ref.name", "reg.example/b:1"}};
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {da, db}}}).dump());

  Error error = open_error("oci:" + dir.string());
  EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(error.message().find("reg.example/b:1"), std::string::npos) << error.message();
  auto reader = open_ok("oci:" + dir.string() + ":reg.example/b:1");
  ASSERT_TRUE(reader);
  expect_image(*reader, b);
  EXPECT_EQ(reader->info().tags, std::vector<std::string>{"reg.example/b:1"});
}

TEST_F(ImageReaderTest, TamperedLayerFailsVerificationAtTheEnd) {
  std::vector<Layer> layers = three_layers();
  fs::path tar = make_legacy_archive(layers, "tampered");
  std::string bytes = read_file(tar);
  size_t at = bytes.find("TAMPER-ME-MARKER");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'X';
  write_file(tar, bytes);

  auto reader = open_ok("docker-archive:" + tar.string());
  ASSERT_TRUE(reader);
  auto layer = reader->open_layer(0);
  ASSERT_TRUE(layer.has_value());
  HashingSink sink;
  auto copied = copy_all(**layer, sink);
  ASSERT_FALSE(copied.has_value());
  EXPECT_EQ(copied.error().code(), ErrorCode::kVerifyFailed);
  const std::string& message = copied.error().message();
  EXPECT_NE(message.find("layer 1 (sha256:" + layers[0].diff_id.short_str()), std::string::npos)
      << message;
  EXPECT_NE(message.find(tar.string()), std::string::npos) << message;
  // The untouched layers still verify.
  auto second = reader->open_layer(1);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(hash_source(**second), layers[1].diff_id);
}

TEST_F(ImageReaderTest, CorruptCompressedLayerNamesTheLayer) {
  std::vector<Layer> layers = three_layers();
  fs::path dir = root_ / "badgz";
  json desc = write_oci_blobs(dir, layers);
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  // Damage the middle of the gzip stream (same size).
  fs::path blob = dir / "blobs/sha256" / layers[1].blob_digest.hex();
  std::string bytes = read_file(blob);
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 64; ++i) bytes[i] ^= 0x5a;
  write_file(blob, bytes);
  auto reader = open_ok("oci:" + dir.string());
  ASSERT_TRUE(reader);
  auto layer = reader->open_layer(1);
  ASSERT_TRUE(layer.has_value());
  CountingSink sink;
  auto copied = copy_all(**layer, sink);
  ASSERT_FALSE(copied.has_value());
  EXPECT_NE(copied.error().message().find("layer 2 (sha256:"), std::string::npos)
      << copied.error().message();
}

TEST_F(ImageReaderTest, TruncatedArchiveIsCorrupt) {
  std::vector<Layer> layers = three_layers();
  fs::path tar = make_legacy_archive(layers, "truncated");
  fs::resize_file(tar, fs::file_size(tar) / 2);
  Error error = open_error("docker-archive:" + tar.string());
  EXPECT_EQ(error.code(), ErrorCode::kCorrupt);
  EXPECT_NE(error.message().find("truncated"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find(tar.string()), std::string::npos) << error.message();

  // Cut inside a header block, and cut after the config (members missing).
  std::string bytes = read_file(root_ / "truncated.tar");
  for (size_t cut : {size_t{100}, size_t{512 + 1024 + 700}}) {
    write_file(tar, bytes.substr(0, cut));
    Error e = open_error("docker-archive:" + tar.string());
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt) << e.message();
  }
}

TEST_F(ImageReaderTest, MissingMemberIsCorrupt) {
  std::vector<Layer> layers = three_layers();
  std::string config_name = Digest::of(config_json(layers)).hex() + ".json";
  json manifest = json::array({{{"Config", config_name},
                                {"RepoTags", {"app:1"}},
                                {"Layers",
                                 {layers[0].diff_id.hex() + "/layer.tar", "deadbeef/layer.tar",
                                  layers[2].diff_id.hex() + "/layer.tar"}}}});
  fs::path tar = make_legacy_archive(layers, "missing", manifest);
  Error error = open_error("docker-archive:" + tar.string());
  EXPECT_EQ(error.code(), ErrorCode::kCorrupt);
  EXPECT_NE(error.message().find("deadbeef/layer.tar"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find("layer 2"), std::string::npos) << error.message();
}

TEST_F(ImageReaderTest, LayerCountMismatchIsCorrupt) {
  std::vector<Layer> layers = three_layers();
  std::string config_name = Digest::of(config_json(layers)).hex() + ".json";
  json manifest = json::array({{{"Config", config_name},
                                {"RepoTags", nullptr},
                                {"Layers", {layers[0].diff_id.hex() + "/layer.tar"}}}});
  fs::path tar = make_legacy_archive(layers, "count", manifest);
  Error error = open_error("docker-archive:" + tar.string());
  EXPECT_EQ(error.code(), ErrorCode::kCorrupt);
  EXPECT_NE(error.message().find("diff_ids"), std::string::npos) << error.message();
}

TEST_F(ImageReaderTest, BadInputsGiveClearErrors) {
  // Missing file.
  Error missing = open_error("docker-archive:" + (root_ / "nope.tar").string());
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.message().find("nope.tar"), std::string::npos);

  // Not a tar; a gzip file; an empty file.
  write_file(root_ / "text.tar", std::string(2000, 'x'));
  Error text = open_error("docker-archive:" + (root_ / "text.tar").string());
  EXPECT_EQ(text.code(), ErrorCode::kCorrupt);
  EXPECT_NE(text.message().find("not a tar"), std::string::npos) << text.message();

  write_file(root_ / "gz/a", "a");
  run("tar -C " + (root_ / "gz").string() + " -czf " + (root_ / "img.tar.gz").string() + " a");
  Error gz = open_error("docker-archive:" + (root_ / "img.tar.gz").string());
  EXPECT_EQ(gz.code(), ErrorCode::kCorrupt);
  EXPECT_NE(gz.message().find("gzip"), std::string::npos) << gz.message();

  write_file(root_ / "empty.tar", "");
  EXPECT_EQ(open_error("docker-archive:" + (root_ / "empty.tar").string()).code(),
            ErrorCode::kCorrupt);

  // A tar that is not an image.
  write_file(root_ / "plain/readme", "hello");
  run("tar -C " + (root_ / "plain").string() + " -cf " + (root_ / "plain.tar").string() +
      " readme");
  Error plain = open_error("docker-archive:" + (root_ / "plain.tar").string());
  EXPECT_EQ(plain.code(), ErrorCode::kCorrupt);
  EXPECT_NE(plain.message().find("manifest.json"), std::string::npos) << plain.message();
  EXPECT_EQ(open_error("oci-archive:" + (root_ / "plain.tar").string()).code(),
            ErrorCode::kCorrupt);

  // Bad JSON in manifest.json.
  write_file(root_ / "badjson/manifest.json", "[{\"Config\": ");
  run("tar -C " + (root_ / "badjson").string() + " -cf " + (root_ / "badjson.tar").string() +
      " manifest.json");
  Error bad = open_error("docker-archive:" + (root_ / "badjson.tar").string());
  EXPECT_EQ(bad.code(), ErrorCode::kCorrupt);
  EXPECT_NE(bad.message().find("not valid JSON"), std::string::npos) << bad.message();

  // Wrong JSON types.
  write_file(root_ / "badtype/manifest.json", R"([{"Config": 5, "Layers": "x"}])");
  run("tar -C " + (root_ / "badtype").string() + " -cf " + (root_ / "badtype.tar").string() +
      " manifest.json");
  EXPECT_EQ(open_error("docker-archive:" + (root_ / "badtype.tar").string()).code(),
            ErrorCode::kCorrupt);

  // An oversized JSON member is refused before it is read.
  write_file(root_ / "huge/manifest.json", std::string(kMaxJsonBytes + 1, ' '));
  run("tar -C " + (root_ / "huge").string() + " -cf " + (root_ / "huge.tar").string() +
      " manifest.json");
  Error huge = open_error("docker-archive:" + (root_ / "huge.tar").string());
  EXPECT_EQ(huge.code(), ErrorCode::kCorrupt);
  EXPECT_NE(huge.message().find("limit"), std::string::npos) << huge.message();

  // oci: of a file, docker-archive: of a directory.
  EXPECT_EQ(open_error("oci:" + (root_ / "plain.tar").string()).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(open_error("docker-archive:" + root_.string()).code(), ErrorCode::kInvalidArgument);
}

TEST_F(ImageReaderTest, OciBlobDigestAndTraversalChecks) {
  std::vector<Layer> layers = {make_layer("one", {{"f", "1"}})};
  fs::path dir = root_ / "digest";
  json desc = write_oci_blobs(dir, layers);
  // A manifest blob whose content does not match its digest.
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  fs::path manifest_blob =
      dir / "blobs/sha256" / Digest::parse(desc["digest"].get<std::string>())->hex();
  std::string bytes = read_file(manifest_blob);
  bytes.back() = ' ';
  write_file(manifest_blob, bytes);
  Error error = open_error("oci:" + dir.string());
  EXPECT_EQ(error.code(), ErrorCode::kCorrupt);
  EXPECT_NE(error.message().find("hashes to"), std::string::npos) << error.message();

  // Non-sha256 digests are unsupported (and never become paths).
  desc["digest"] = "sha512:../../etc/passwd";
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  EXPECT_EQ(open_error("oci:" + dir.string()).code(), ErrorCode::kUnsupported);
}

TEST_F(ImageReaderTest, WriterOutputRoundTrips) {
  std::vector<Layer> layers = three_layers();
  layers.push_back(layers[0]);  // an image may repeat a layer
  fs::path dir = root_ / "src";
  json desc = write_oci_blobs(dir, layers);
  write_file(dir / "index.json", json({{"schemaVersion", 2}, {"manifests", {desc}}}).dump());
  auto source = open_ok("oci:" + dir.string());
  ASSERT_TRUE(source);

  StringSink out;
  DockerArchiveWriter writer(out, source->info().config_bytes, {"app:rt", "reg.example/app:rt"});
  for (size_t i = 0; i < layers.size(); ++i) {
    auto layer = source->open_layer(i);
    ASSERT_TRUE(layer.has_value()) << layer.error().message();
    auto added = writer.add_layer(layers[i].diff_id, layers[i].tar.size(), **layer);
    ASSERT_TRUE(added.has_value()) << added.error().message();
  }
  auto finished = writer.finish();
  ASSERT_TRUE(finished.has_value()) << finished.error().message();
  fs::path tar = root_ / "written.tar";
  write_file(tar, out.data());
  EXPECT_EQ(out.data().size() % kTarBlock, 0u);

  // GNU tar reads it, and so do we, identically.
  run("tar -tf " + tar.string() + " > /dev/null");
  auto reader = open_ok("docker-archive:" + tar.string());
  ASSERT_TRUE(reader);
  for (auto& l : layers) l.blob = l.tar;
  expect_image(*reader, layers);
  EXPECT_EQ(reader->info().image_id, source->info().image_id);
  EXPECT_EQ(reader->info().config_bytes, source->info().config_bytes);
  EXPECT_EQ(reader->info().tags, (std::vector<std::string>{"app:rt", "reg.example/app:rt"}));
  EXPECT_EQ(reader->info().layers[3].blob_name, reader->info().layers[0].blob_name);
}

// The OCI archive for Docker's containerd image store: GNU tar and our
// oci-archive reader read it back as the same image; the manifest names
// every layer uncompressed by its diff_id, its digest is known before any
// layer is written and is the same for the same config and layers; a layer
// out of order or with other content leaves the archive unfinished.
TEST_F(ImageReaderTest, OciWriterOutputRoundTripsWithADeterministicManifest) {
  std::vector<Layer> layers = three_layers();
  layers.push_back(layers[0]);  // a repeated layer: one blob
  std::string config = config_json(layers);
  std::vector<OciArchiveWriter::LayerSize> sizes;
  for (const auto& l : layers) sizes.push_back({l.diff_id, l.tar.size()});

  auto write = [&](StringSink& out) -> Digest {
    auto writer = OciArchiveWriter::create(out, config, sizes, {"app:oci"});
    EXPECT_TRUE(writer.has_value()) << writer.error().message();
    if (!writer) return {};
    Digest digest = (*writer)->manifest_digest();
    for (const auto& l : layers) {
      MemorySource content(l.tar);
      auto added = (*writer)->add_layer(l.diff_id, l.tar.size(), content);
      EXPECT_TRUE(added.has_value()) << added.error().message();
    }
    auto finished = (*writer)->finish();
    EXPECT_TRUE(finished.has_value()) << finished.error().message();
    return digest;
  };
  StringSink first, second;
  Digest manifest_digest = write(first);
  EXPECT_EQ(write(second), manifest_digest);
  EXPECT_EQ(first.data(), second.data());

  fs::path tar = root_ / "written-oci.tar";
  write_file(tar, first.data());
  run("tar -tf " + tar.string() + " > /dev/null");
  fs::path dir = root_ / "unpacked-oci";
  fs::create_directories(dir);
  run("tar -xf " + tar.string() + " -C " + dir.string());
  std::string manifest = read_file(dir / "blobs/sha256" / manifest_digest.hex());
  EXPECT_EQ(Digest::of(manifest), manifest_digest);
  json m = json::parse(manifest);
  ASSERT_EQ(m["layers"].size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(m["layers"][i]["digest"], layers[i].diff_id.str());
    EXPECT_EQ(m["layers"][i]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
  }
  EXPECT_EQ(m["config"]["digest"], Digest::of(config).str());
  json index = json::parse(read_file(dir / "index.json"));
  EXPECT_EQ(index["manifests"][0]["digest"], manifest_digest.str());
  EXPECT_EQ(index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/app:oci");

  auto reader = open_ok("oci-archive:" + tar.string());
  ASSERT_TRUE(reader);
  for (auto& l : layers) l.blob = l.tar;
  expect_image(*reader, layers);
  EXPECT_EQ(reader->info().image_id, Digest::of(config));

  // Wrong content, or a layer out of order: refused, the archive unfinished.
  StringSink bad;
  auto writer = OciArchiveWriter::create(bad, config, sizes, {});
  ASSERT_TRUE(writer.has_value());
  std::string garbage(layers[0].tar.size(), 'x');
  MemorySource wrong(garbage);
  auto added = (*writer)->add_layer(layers[0].diff_id, layers[0].tar.size(), wrong);
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code(), ErrorCode::kVerifyFailed);
  EXPECT_FALSE((*writer)->finish().has_value());
  StringSink order;
  auto second_writer = OciArchiveWriter::create(order, config, sizes, {});
  ASSERT_TRUE(second_writer.has_value());
  MemorySource later(layers[1].tar);
  EXPECT_FALSE((*second_writer)->add_layer(layers[1].diff_id, layers[1].tar.size(), later));
  // Sizes that are not the config's layers are refused up front.
  sizes.pop_back();
  StringSink short_out;
  EXPECT_FALSE(OciArchiveWriter::create(short_out, config, sizes, {}).has_value());
}

// Layers the engine already holds are skipped: manifest.json lists them and
// an empty <diffid>/layer.tar stands in for each (Podman's load refuses an
// archive whose manifest names a missing file). A skipped layer that comes
// again later in the chain is written there with its content, once.
TEST_F(ImageReaderTest, WriterSkippedLayersGetEmptyPlaceholders) {
  std::vector<Layer> layers = {make_layer("s1", {{"a", "1"}}), make_layer("s2", {{"b", "2"}}),
                               make_layer("s3", {{"c", "3"}})};
  layers.push_back(layers[0]);
  std::string config = config_json(layers);
  StringSink out;
  DockerArchiveWriter writer(out, config, {"app:skip"});
  ASSERT_TRUE(writer.skip_layer(layers[0].diff_id).has_value());
  ASSERT_TRUE(writer.skip_layer(layers[1].diff_id).has_value());
  MemorySource third(layers[2].tar);
  ASSERT_TRUE(writer.add_layer(layers[2].diff_id, layers[2].tar.size(), third).has_value());
  MemorySource again(layers[0].tar);
  ASSERT_TRUE(writer.add_layer(layers[0].diff_id, layers[0].tar.size(), again).has_value());
  auto finished = writer.finish();
  ASSERT_TRUE(finished.has_value()) << finished.error().message();
  fs::path tar = root_ / "skipped.tar";
  write_file(tar, out.data());

  // Each layer file once: s1 with its content, s2 an empty placeholder.
  run("tar -tf " + tar.string() + " | sort | uniq -d > " + (root_ / "dups").string());
  EXPECT_EQ(read_file(root_ / "dups"), "");
  fs::path x = root_ / "skipped";
  fs::create_directories(x);
  run("tar -xf " + tar.string() + " -C " + x.string());
  auto layer_file = [&](const Layer& l) { return x / l.diff_id.hex() / "layer.tar"; };
  EXPECT_EQ(read_file(layer_file(layers[0])), layers[0].tar);
  EXPECT_EQ(fs::file_size(layer_file(layers[1])), 0u);
  EXPECT_EQ(read_file(layer_file(layers[2])), layers[2].tar);
  json manifest = json::parse(read_file(x / "manifest.json"));
  std::vector<std::string> paths;
  for (const auto& l : layers) paths.push_back(l.diff_id.hex() + "/layer.tar");
  EXPECT_EQ(manifest[0]["Layers"].get<std::vector<std::string>>(), paths);
  // Qualified, so that Podman does not read it as localhost/app:skip.
  EXPECT_EQ(manifest[0]["RepoTags"], json::array({"docker.io/library/app:skip"}));
}

TEST_F(ImageReaderTest, WriterRefusesWrongLayers) {
  std::vector<Layer> layers = {make_layer("w1", {{"a", "1"}}), make_layer("w2", {{"b", "2"}})};
  std::string config = config_json(layers);
  {
    StringSink out;
    DockerArchiveWriter writer(out, config, {});
    MemorySource content(layers[1].tar);
    auto added = writer.add_layer(layers[1].diff_id, layers[1].tar.size(), content);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code(), ErrorCode::kInvalidArgument);
  }
  {
    StringSink out;
    DockerArchiveWriter writer(out, config, {});
    std::string altered = layers[0].tar;
    altered[600] ^= 1;
    MemorySource content(altered);
    auto added = writer.add_layer(layers[0].diff_id, altered.size(), content);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code(), ErrorCode::kVerifyFailed);
    EXPECT_EQ(out.data().find("manifest.json"), std::string::npos);
    EXPECT_FALSE(writer.finish().has_value());
  }
  {
    StringSink out;
    DockerArchiveWriter writer(out, config, {});
    MemorySource content(layers[0].tar);
    ASSERT_TRUE(writer.add_layer(layers[0].diff_id, layers[0].tar.size(), content).has_value());
    auto finished = writer.finish();  // one layer missing
    ASSERT_FALSE(finished.has_value());
    EXPECT_EQ(finished.error().code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace deltasync
