// Layers made by a real engine split and reassemble bit-exactly.
//
// The private "sender" engine builds (classic builder, --network none) an
// image FROM the busybox base whose layers hold what real layers hold: a few
// thousand small files, a ~300 MiB file of non-zero content, paths over 100
// and over 255 bytes, unicode names, hard links and symlinks made by `RUN ln`,
// a security.capability xattr (the only one Docker's layer differ keeps; it
// comes from `ADD` of a tar whose PAX header carries it, so the differ reads
// it back from the file system), whiteouts of a file and of a directory from
// lower layers, and empty files. A second, imported image carries an opaque
// directory (`.wh..wh..opq`), which the vfs differ of the test engines never
// writes.
//
// This test proves, for every layer of the built image, read back both
// through EngineClient::export_image (GET /images/{name}/get) and through the
// `docker save` CLI (and of the imported one, through the CLI): open_image() + open_layer() yield
// the layer, split_tar + TarMetadataWriter + reassemble_tar rebuild it to a tar whose sha256 is the
// layer's diff_id, and each of the features above is really in some layer
// (checked with TarEntryReader, not assumed). It also proves that a layer
// whose bytes no longer match its diff_id (one byte flipped in the middle of
// the big file, inside the archive) fails at the end of open_layer()'s stream
// with kVerifyFailed naming the layer, and that a truncated archive (the
// imported image's, cut inside its layer member or its last member) is a
// clear kCorrupt error.
//
// Every case runs in its own process under ctest. The built image's tag is a
// hash of what it is built from, so the first case builds it (under a lock,
// for ctest -j) and the others find it; reruns against the same engine reuse
// it. The images stay in the private engine, which the "engines" fixture
// removes with all its state.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "common/tar/tar_split.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::random_bytes;
using testing::run_docker;
using testing::write_file;

constexpr const char* kImportedRef = "deltasync-real-layers-imported:1";

constexpr size_t kSmallFiles = 3000;
constexpr size_t kSmallDirs = 30;
constexpr size_t kSeedBytes = 1 << 20;
constexpr int kBigBlocks = 300;  // big.bin: 300 x (1 MiB seed + "block N\n")

// cap_net_bind_service, as `setcap cap_net_bind_service=+ep` writes it
// (VFS_CAP_REVISION_2, permitted bit 10, effective flag).
const std::string kCapability = std::string(
    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);

const std::string kUnicodeName = "данные-数据-😀.txt";
const std::string kLongComponent(60, 'd');

uint64_t big_file_size() {
  uint64_t size = 0;
  for (int i = 0; i < kBigBlocks; ++i)
    size += kSeedBytes + ("block " + std::to_string(i) + "\n").size();
  return size;
}

// Writes a PAX tar with Python's tarfile (an implementation independent of
// ours and of Go's): a file carrying the capability xattr and, when
// `opaque`, a directory with an opaque whiteout marker.
void write_python_tar(const fs::path& out, bool opaque) {
  static const char* kScript = R"PY(
import io, sys, tarfile
out, opaque = sys.argv[1], sys.argv[2] == "1"
cap = bytes.fromhex(sys.argv[3]).decode("latin-1")
def add(tf, name, kind, data=b"", mode=0o644, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = kind, mode, 1700000000
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    if pax:
        ti.pax_headers = pax
    tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "opt", tarfile.DIRTYPE, mode=0o755)
    add(tf, "opt/cap", tarfile.DIRTYPE, mode=0o755)
    add(tf, "opt/cap/bind-tool", tarfile.REGTYPE, b"#!/bin/sh\necho bind\n", 0o755,
        {"SCHILY.xattr.security.capability": cap})
    if opaque:
        add(tf, "opq", tarfile.DIRTYPE, mode=0o755)
        add(tf, "opq/.wh..wh..opq", tarfile.REGTYPE)
        add(tf, "opq/kept", tarfile.REGTYPE, b"kept\n")
)PY";
  std::string hex;
  for (unsigned char c : kCapability) {
    static const char* digits = "0123456789abcdef";
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  auto result =
      testing::run_command({"python3", "-c", kScript, out.string(), opaque ? "1" : "0", hex});
  ASSERT_TRUE(result.ok()) << "python3 tarfile: " << result.error_output;
}

// The test image's Dockerfile. The big file comes last: the vfs driver
// copies the whole root file system for every later step, so nothing is
// built on top of it.
std::string dockerfile() {
  return "FROM " + std::string(testing::kBaseImageRef) +
         "\n"
         "COPY tree/ /data/\n"
         "ADD cap.tar /\n"
         "RUN echo hard > /data/hl-a && ln /data/hl-a /data/hl-b"
         " && ln -s /data/many/d00/f0000 /data/abs-link"
         " && ln -s ../many/d01/f0001 /data/unicode/rel-link-ü"
         " && mkdir -p /gone/sub && echo x > /gone/sub/x && echo y > /gone/y"
         " && echo z > /gone-file && mkdir /d && echo old > /d/old"
         " && touch /data/empty-from-run\n"
         "RUN rm /gone-file && rm -rf /gone && rm -rf /d && mkdir /d && touch /d/new\n"
         "COPY seed.bin /seed.bin\n"
         "RUN i=0; while [ $i -lt " +
         std::to_string(kBigBlocks) +
         " ]; do cat /seed.bin; echo \"block $i\"; i=$((i+1)); done > /big.bin"
         " && rm /seed.bin\n";
}

// The test image's tag: names what the image is built from, so a case that
// finds it in the engine (built by an earlier case) can skip the build.
// Bump the version when write_build_context() writes something different.
std::string built_tag() {
  const std::string recipe = dockerfile() + "|context v1|" + std::to_string(kSmallFiles) + "/" +
                             std::to_string(kSmallDirs) + "/" + std::to_string(kSeedBytes);
  return "deltasync-real-layers:" + Digest::of(recipe).short_str();
}

// The build context of the test image.
void write_build_context(const fs::path& dir) {
  fs::path tree = dir / "tree";
  for (size_t i = 0; i < kSmallFiles; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "many/d%02zu/f%04zu", i % kSmallDirs, i);
    write_file(tree / name, "small file " + std::to_string(i) + "\n");
  }
  for (int i = 0; i < 5; ++i) write_file(tree / "empty" / ("e" + std::to_string(i)), "");
  fs::path deep = tree / "long";
  for (int i = 0; i < 5; ++i) deep /= kLongComponent + std::to_string(i);
  write_file(deep / "file-with-a-path-over-255-bytes.txt", "deep\n");
  write_file(tree / "names" / (std::string(120, 'n') + ".txt"), "name over 100 bytes\n");
  write_file(tree / "unicode" / kUnicodeName, "unicode content\n");
  write_file(tree / "unicode" / "café" / "naïve.txt", "accents\n");
  write_file(dir / "seed.bin", random_bytes(kSeedBytes, 7));
  write_python_tar(dir / "cap.tar", /*opaque=*/false);
  write_file(dir / "Dockerfile", dockerfile());
}

// What the layers of an image were seen to hold.
struct Features {
  size_t entries = 0;
  size_t small_files = 0;
  bool path_over_100 = false;
  bool path_over_255 = false;
  bool unicode_name = false;
  bool hardlink = false;
  bool symlink = false;
  bool file_whiteout = false;
  bool dir_whiteout = false;
  bool opaque_whiteout = false;
  bool empty_file = false;
  bool capability_xattr = false;
  uint64_t big_file_size = 0;
  size_t big_file_layer = 0;
};

class RealLayersTest : public testing::EngineTest {
 protected:
  static void SetUpTestSuite() {
    auto dir = TempDir::create(default_temp_parent(), "real-layers-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    scratch_ = new TempDir(std::move(*dir));
  }
  static void TearDownTestSuite() {
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override {
    testing::EngineTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_NE(scratch_, nullptr);
    engine_.emplace(EngineOptions{sender_engine()});
  }

  static const fs::path& scratch() { return scratch_->path(); }

  // Builds the test image, or finds it built by an earlier case. Cases run
  // in parallel (ctest -j) take turns under a lock, so only one builds; all
  // use its ID from then on.
  void ensure_built_image() {
    if (!built_id_.empty()) return;
    fs::path lock_path =
        default_temp_parent() /
        ("deltasync-real-layers-" + Digest::of(sender_engine()).short_str() + ".lock");
    UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(lock.valid()) << lock_path << ": " << std::strerror(errno);
    ASSERT_EQ(::flock(lock.get(), LOCK_EX), 0) << lock_path << ": " << std::strerror(errno);
    const std::string tag = built_tag();
    if (auto existing = engine_->inspect_image(tag)) {
      built_id_ = existing->id;
      return;
    }
    auto base = testing::ensure_base_image(sender_engine());
    ASSERT_TRUE(base) << base.error().message();
    fs::path context = scratch() / "context";
    ASSERT_NO_FATAL_FAILURE(write_build_context(context));
    auto id = testing::build_image(sender_engine(), context, tag);
    ASSERT_TRUE(id) << id.error().message();
    built_id_ = *id;
    fs::remove_all(context);
  }

  // The test image as exported by EngineClient::export_image.
  fs::path engine_archive() {
    fs::path path = scratch() / "engine-export.tar";
    if (fs::exists(path)) return path;
    ensure_built_image();
    if (HasFatalFailure()) return {};
    fs::path partial = scratch() / "engine-export.tar.partial";
    int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << partial << ": " << std::strerror(errno);
    if (fd < 0) return {};
    FdSink sink(UniqueFd(fd), partial.string());
    auto exported = engine_->export_image(built_id_, sink);
    EXPECT_TRUE(exported) << exported.error().message();
    auto finished = sink.finish();
    EXPECT_TRUE(finished) << finished.error().message();
    if (!exported || !finished) return {};
    fs::rename(partial, path);
    return path;
  }

  // The test image as written by the `docker save` CLI.
  fs::path cli_archive() {
    fs::path path = scratch() / "docker-save.tar";
    if (fs::exists(path)) return path;
    ensure_built_image();
    if (HasFatalFailure()) return {};
    fs::path partial = scratch() / "docker-save.tar.partial";
    auto saved = run_docker(sender_engine(), {"save", "-o", partial.string(), built_id_});
    EXPECT_TRUE(saved.ok()) << "docker save: " << saved.error_output;
    if (!saved.ok()) return {};
    fs::rename(partial, path);
    return path;
  }

  // A small image imported from a Python-made tar with an opaque directory
  // (written to opaque_tar()), as saved by the `docker save` CLI.
  fs::path imported_archive() {
    fs::path path = scratch() / "imported.tar";
    if (fs::exists(path)) return path;
    write_python_tar(opaque_tar(), /*opaque=*/true);
    if (HasFatalFailure()) return {};
    auto id = testing::import_image(sender_engine(), opaque_tar(), kImportedRef);
    EXPECT_TRUE(id) << id.error().message();
    if (!id) return {};
    fs::path partial = scratch() / "imported.tar.partial";
    auto saved = run_docker(sender_engine(), {"save", "-o", partial.string(), *id});
    EXPECT_TRUE(saved.ok()) << "docker save: " << saved.error_output;
    if (!saved.ok()) return {};
    fs::rename(partial, path);
    return path;
  }
  static fs::path opaque_tar() { return scratch() / "opaque.tar"; }

  static std::unique_ptr<ImageReader> open_archive(const fs::path& archive) {
    auto ref = ImageRef::parse("docker-archive:" + archive.string());
    EXPECT_TRUE(ref) << ref.error().message();
    if (!ref) return nullptr;
    auto reader = open_image(*ref, nullptr);
    EXPECT_TRUE(reader) << reader.error().message();
    if (!reader) return nullptr;
    return std::move(*reader);
  }

  // Splits and reassembles every layer; each must come back as its diff_id.
  // `min_total`: the layers must hold at least this many bytes in all.
  void expect_every_layer_round_trips(ImageReader& image, uint64_t min_total) {
    const ImageInfo& info = image.info();
    ASSERT_FALSE(info.layers.empty());
    uint64_t total = 0;
    for (size_t i = 0; i < info.layers.size(); ++i) {
      SCOPED_TRACE("layer " + std::to_string(i + 1) + " " + info.layers[i].diff_id.str() + " of " +
                   image.describe());
      auto layer = image.open_layer(i);
      ASSERT_TRUE(layer) << layer.error().message();
      auto rt = testing::round_trip_tar(**layer, scratch());
      ASSERT_TRUE(rt) << rt.error().message();
      EXPECT_EQ(rt->input_digest, info.layers[i].diff_id);
      EXPECT_EQ(rt->output_digest, info.layers[i].diff_id);
      EXPECT_EQ(rt->output_bytes, rt->input_bytes);
      total += rt->input_bytes;
    }
    fs::remove(scratch() / "payloads.bin");
    EXPECT_GE(total, min_total);
  }

  // Walks every entry of every layer.
  static Features scan(ImageReader& image) {
    Features f;
    for (size_t i = 0; i < image.info().layers.size(); ++i) {
      auto layer = image.open_layer(i);
      EXPECT_TRUE(layer) << layer.error().message();
      if (!layer) return f;
      TarEntryReader reader(**layer, "layer " + std::to_string(i + 1));
      while (true) {
        auto next = reader.next();
        EXPECT_TRUE(next) << next.error().message();
        if (!next || !*next) break;
        const TarEntry& e = **next;
        std::string path = e.normalized_path();
        ++f.entries;
        if (path.starts_with("data/many/") && e.is_regular()) ++f.small_files;
        if (path.size() > 100) f.path_over_100 = true;
        if (path.size() > 255 && path.ends_with("file-with-a-path-over-255-bytes.txt")) {
          f.path_over_255 = true;
        }
        if (path == "data/unicode/" + kUnicodeName && e.is_regular()) f.unicode_name = true;
        if (e.is_hardlink() && (path == "data/hl-b" || path == "data/hl-a")) {
          EXPECT_EQ(normalize_tar_path(e.link_target),
                    path == "data/hl-b" ? "data/hl-a" : "data/hl-b");
          f.hardlink = true;
        }
        if (e.is_symlink() && path == "data/abs-link") {
          EXPECT_EQ(e.link_target, "/data/many/d00/f0000");
          f.symlink = true;
        }
        if (path == ".wh.gone-file" || path == "d/.wh.old") f.file_whiteout = true;
        if (path == ".wh.gone") f.dir_whiteout = true;
        if (e.is_opaque_whiteout()) f.opaque_whiteout = true;
        if (e.is_regular() && e.size == 0 && !e.is_whiteout()) f.empty_file = true;
        if (auto it = e.xattrs.find("security.capability"); it != e.xattrs.end()) {
          EXPECT_EQ(path, "opt/cap/bind-tool");
          EXPECT_EQ(it->second, kCapability);
          f.capability_xattr = it->second == kCapability;
        }
        if (path == "big.bin") {
          f.big_file_size = e.size;
          f.big_file_layer = i;
        }
      }
    }
    return f;
  }

  static TempDir* scratch_;
  static std::string built_id_;
  std::optional<EngineClient> engine_;
};

TempDir* RealLayersTest::scratch_ = nullptr;
std::string RealLayersTest::built_id_;

TEST_F(RealLayersTest, EngineExportRoundTripsEveryLayer) {
  fs::path archive = engine_archive();
  ASSERT_FALSE(archive.empty());
  auto image = open_archive(archive);
  ASSERT_NE(image, nullptr);
  // The archive describes the image the engine holds.
  auto detail = engine_->inspect_image(built_id_);
  ASSERT_TRUE(detail) << detail.error().message();
  EXPECT_EQ(image->info().image_id.str(), detail->id);
  std::vector<std::string> diff_ids;
  for (const auto& layer : image->info().layers) diff_ids.push_back(layer.diff_id.str());
  EXPECT_EQ(diff_ids, detail->diff_ids);
  // base + COPY + ADD + RUN + RUN + COPY + RUN
  EXPECT_EQ(image->info().layers.size(), 7u);
  expect_every_layer_round_trips(*image, big_file_size());
}

TEST_F(RealLayersTest, DockerSaveCliArchiveRoundTripsEveryLayer) {
  fs::path archive = cli_archive();
  ASSERT_FALSE(archive.empty());
  auto image = open_archive(archive);
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->info().layers.size(), 7u);
  expect_every_layer_round_trips(*image, big_file_size());
}

TEST_F(RealLayersTest, LayersHoldWhatRealLayersHold) {
  fs::path archive = engine_archive();
  ASSERT_FALSE(archive.empty());
  auto image = open_archive(archive);
  ASSERT_NE(image, nullptr);
  Features f = scan(*image);
  EXPECT_GE(f.small_files, kSmallFiles);
  EXPECT_TRUE(f.path_over_100);
  EXPECT_TRUE(f.path_over_255);
  EXPECT_TRUE(f.unicode_name);
  EXPECT_TRUE(f.hardlink);
  EXPECT_TRUE(f.symlink);
  EXPECT_TRUE(f.file_whiteout);
  EXPECT_TRUE(f.dir_whiteout);
  EXPECT_TRUE(f.empty_file);
  EXPECT_TRUE(f.capability_xattr) << "no layer carries security.capability on opt/cap/bind-tool";
  EXPECT_EQ(f.big_file_size, big_file_size());
  EXPECT_EQ(f.big_file_layer, image->info().layers.size() - 1);
  // The vfs differ writes one whiteout per removed child instead of an
  // opaque marker; ImportedOpaqueDirectoryLayerRoundTrips covers those.
  if (f.opaque_whiteout) std::printf("note: the built image has an opaque whiteout\n");
}

// Flips one byte in the middle of big.bin inside the layer member of a copy
// of the `docker save` archive: the archive still opens, and the layer's
// stream fails at its end with kVerifyFailed naming the layer.
TEST_F(RealLayersTest, LayerNotMatchingItsDiffIdFailsVerification) {
  fs::path archive = cli_archive();
  ASSERT_FALSE(archive.empty());
  fs::path copy = scratch() / "flipped.tar";
  fs::copy_file(archive, copy, fs::copy_options::overwrite_existing);
  auto image = open_archive(copy);
  ASSERT_NE(image, nullptr);
  const ImageInfo& info = image->info();
  const size_t big = info.layers.size() - 1;
  const std::string member = info.layers[big].blob_name;

  // Offset of the layer member's content in the outer archive.
  auto fd = open_for_read(copy);
  ASSERT_TRUE(fd) << fd.error().message();
  auto size = file_size(fd->get(), copy);
  ASSERT_TRUE(size) << size.error().message();
  std::optional<uint64_t> member_offset;
  uint64_t member_size = 0;
  {
    FileSource whole(fd->get(), 0, *size, copy.string());
    TarEntryReader outer(whole, copy.string());
    while (true) {
      auto next = outer.next();
      ASSERT_TRUE(next) << next.error().message();
      if (!*next) break;
      if ((*next)->normalized_path() == member) {
        member_offset = outer.offset();
        member_size = (*next)->size;
      }
    }
  }
  ASSERT_TRUE(member_offset) << member << " not found in " << copy;
  // Offset of big.bin's content inside the layer member.
  std::optional<uint64_t> data_offset;
  uint64_t data_size = 0;
  {
    FileSource layer(fd->get(), *member_offset, member_size, member);
    TarEntryReader inner(layer, member);
    while (true) {
      auto next = inner.next();
      ASSERT_TRUE(next) << next.error().message();
      if (!*next) break;
      if ((*next)->normalized_path() == "big.bin") {
        data_offset = *member_offset + inner.offset();
        data_size = (*next)->size;
      }
    }
  }
  ASSERT_TRUE(data_offset) << "big.bin not found in " << member;
  ASSERT_EQ(data_size, big_file_size());
  {
    const uint64_t at = *data_offset + data_size / 2;
    UniqueFd rw(::open(copy.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(rw.valid()) << std::strerror(errno);
    char byte = 0;
    ASSERT_EQ(::pread(rw.get(), &byte, 1, static_cast<off_t>(at)), 1);
    byte = static_cast<char>(byte ^ 0x5a);
    ASSERT_EQ(::pwrite(rw.get(), &byte, 1, static_cast<off_t>(at)), 1);
  }

  // The other layers are intact; the flipped one fails at its end.
  auto intact = image->open_layer(0);
  ASSERT_TRUE(intact) << intact.error().message();
  CountingSink counted;
  EXPECT_TRUE(copy_all(**intact, counted)) << "layer 1 is untouched";
  auto layer = image->open_layer(big);
  ASSERT_TRUE(layer) << layer.error().message();
  CountingSink sink;
  auto copied = copy_all(**layer, sink);
  ASSERT_FALSE(copied) << "a layer with a flipped byte passed verification";
  EXPECT_EQ(copied.error().code(), ErrorCode::kVerifyFailed) << copied.error().message();
  const std::string& message = copied.error().message();
  std::printf("flipped byte: %s\n", message.c_str());
  EXPECT_NE(message.find("layer " + std::to_string(big + 1)), std::string::npos) << message;
  EXPECT_NE(message.find(info.layers[big].diff_id.short_str()), std::string::npos) << message;
  // The splitter sees the same failure (it reads the layer to its end).
  auto again = image->open_layer(big);
  ASSERT_TRUE(again) << again.error().message();
  auto rt = testing::round_trip_tar(**again, scratch());
  ASSERT_FALSE(rt) << "round trip of a corrupted layer succeeded";
  EXPECT_EQ(rt.error().code(), ErrorCode::kVerifyFailed) << rt.error().message();
  fs::remove(scratch() / "payloads.bin");
  fs::remove(copy);
}

// A `docker save` archive cut short (inside a layer member, or inside the
// last member) is a kCorrupt error that says so and names the file.
TEST_F(RealLayersTest, TruncatedArchiveIsCorrupt) {
  fs::path archive = imported_archive();
  ASSERT_FALSE(archive.empty());
  const uint64_t size = fs::file_size(archive);
  for (uint64_t keep : {size / 2, size - 3 * kTarBlock}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " of " + std::to_string(size) + " bytes");
    fs::path copy = scratch() / "truncated.tar";
    fs::copy_file(archive, copy, fs::copy_options::overwrite_existing);
    fs::resize_file(copy, keep);
    auto ref = ImageRef::parse("docker-archive:" + copy.string());
    ASSERT_TRUE(ref) << ref.error().message();
    auto image = open_image(*ref, nullptr);
    ASSERT_FALSE(image) << "a truncated archive opened";
    std::printf("kept %llu of %llu bytes: %s\n", static_cast<unsigned long long>(keep),
                static_cast<unsigned long long>(size), image.error().message().c_str());
    EXPECT_EQ(image.error().code(), ErrorCode::kCorrupt) << image.error().message();
    EXPECT_NE(image.error().message().find("truncated"), std::string::npos)
        << image.error().message();
    EXPECT_NE(image.error().message().find(copy.string()), std::string::npos)
        << image.error().message();
    fs::remove(copy);
  }
}

// An imported layer with an opaque directory and a capability xattr: Docker
// keeps the imported tar as it is (tar-split), so its export is that tar.
TEST_F(RealLayersTest, ImportedOpaqueDirectoryLayerRoundTrips) {
  fs::path archive = imported_archive();
  ASSERT_FALSE(archive.empty());
  const fs::path tar = opaque_tar();
  auto image = open_archive(archive);
  ASSERT_NE(image, nullptr);
  ASSERT_EQ(image->info().layers.size(), 1u);
  auto bytes = read_small_file(tar, 1 << 20);
  ASSERT_TRUE(bytes) << bytes.error().message();
  EXPECT_EQ(image->info().layers[0].diff_id, Digest::of(*bytes))
      << "docker import stored a different tar than it was given";
  expect_every_layer_round_trips(*image, fs::file_size(tar));
  Features f = scan(*image);
  EXPECT_TRUE(f.opaque_whiteout);
  EXPECT_TRUE(f.capability_xattr);
}

}  // namespace
}  // namespace deltasync
