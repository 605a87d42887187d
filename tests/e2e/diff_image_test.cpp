// `deltasend diff-image` against a real engine. The sender engine builds a
// BASE image and a TARGET image (each FROM the busybox base, as two releases
// of one app are built), TARGET with: added, changed and removed files, a
// removed directory tree, a file replaced by a directory and a directory by a
// file, a changed symlink, a changed hard-link pair, and, in a layer loaded
// on top (docker builds on the test engines' vfs driver cannot make them),
// a new hard link to an unchanged file, an opaque directory and a new file
// with a security.capability xattr. make_diff_image() then builds the diff
// image and the test checks, independently of deltasync's tar code:
//   (a) its root file system equals TARGET's: both exported (docker export),
//       unpacked with GNU tar and walked (tests/support/reference_tree.h):
//       same paths, type, content, link target, mode, owner, xattrs, hard
//       links and mtime (directories too), except the mtimes of the paths
//       the container's init layer stamps;
//   (b) its layers are BASE's plus exactly one, its config TARGET's (Env,
//       Cmd, WorkingDir, ExposedPorts, Labels) plus the two origin labels;
//   (c) its extra layer, as `docker save` writes it, is no bigger than a
//       changed-files tar: GNU tar --no-recursion of a list of TARGET's paths
//       (from the walker's comparison of BASE and TARGET) followed by a tar
//       of a ".removed" list of the removed paths, as
//       bench/baselines/measure.sh makes it. Two lists: "content" (added
//       paths and paths whose type, content or link target changed:
//       measure.sh's changed_files) and "exact" (every path whose entry
//       differs at all, with mode, owner, mtime, xattrs, hard links: what
//       the layer itself must carry). Asserted: layer tar bytes <= the
//       content tar's bytes (GNU tar pads to 10 KiB records), layer tar
//       bytes <= the exact tar's, and gzip -6 -n of the layer <= gzip -6 -n
//       of the exact tar. The numbers, with the content tar's gzip, are
//       printed and recorded as test properties;
//   (d) `docker run --network none` of it works (busybox shell).
// It also checks that the command line (--json) makes the same image ID from
// the same inputs, and that a missing base is a clear error.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/engine/engine_client.h"
#include "common/image/image.h"
#include "common/io/file.h"
#include "sender/commands/diff_image_command.h"
#include "sender/diffimage/diff_image_config.h"
#include "tests/support/reference_tree.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

constexpr long kFixedTime = 1700000000;  // mtime of the unchanged files

// cap_net_bind_service=+ep (VFS_CAP_REVISION_2), as real_layers_test uses.
constexpr const char* kCapabilityHex = "0100000200040000000000000000000000000000";

// The layer loaded on top of TARGET's build: a new hard link to the
// unchanged /app/same.txt (rewritten identically, as Docker's overlay2 copy-up
// puts it in the layer), /app/opq made opaque with one new child, and a new
// file with a capability xattr. Python's tarfile, PAX format.
const char* kCraftedLayer = R"PY(
import io, sys, tarfile
out, fixed, cap = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]).decode("latin-1")
def add(tf, name, kind, data=b"", mode=0o644, mtime=fixed, pax=None, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, mtime, 0, 0
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.linkname = link
    if pax:
        ti.pax_headers = pax
    tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "app", tarfile.DIRTYPE, mode=0o755, mtime=fixed + 2000)
    add(tf, "app/same.txt", tarfile.REGTYPE, b"unchanged content\n")
    add(tf, "app/hard-new", tarfile.LNKTYPE, link="app/same.txt")
    add(tf, "app/opq", tarfile.DIRTYPE, mode=0o755, mtime=fixed + 2000)
    add(tf, "app/opq/.wh..wh..opq", tarfile.REGTYPE)
    add(tf, "app/opq/new", tarfile.REGTYPE, b"the only child now\n", mtime=fixed + 2000)
    add(tf, "opt", tarfile.DIRTYPE, mode=0o755)
    add(tf, "opt/cap", tarfile.DIRTYPE, mode=0o755)
    add(tf, "opt/cap/bind-tool", tarfile.REGTYPE, b"#!/bin/sh\necho bind\n", 0o755,
        pax={"SCHILY.xattr.security.capability": cap})
)PY";

class DiffImageTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    auto dir = TempDir::create(default_temp_parent(), "diff-image-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    scratch_ = std::make_unique<TempDir>(std::move(*dir));
    engine_ = std::make_unique<EngineClient>(EngineOptions{sender_engine()});
    tag_ = "ds-diffimage:" + std::to_string(::getpid());
  }
  void TearDown() override {
    if (!engine_) return;
    for (const auto& ref : created_) remove_image_cli(sender_engine(), ref);
  }

  const fs::path& work() const { return scratch_->path(); }

  std::string build(const fs::path& dir, const std::string& ref) {
    auto id = build_image(sender_engine(), dir, ref);
    EXPECT_TRUE(id) << id.error().message();
    created_.push_back(ref);
    return id ? *id : std::string();
  }

  static void set_mtimes(const fs::path& root, long seconds,
                         const std::vector<fs::path>& only = {}) {
    std::vector<std::string> argv = {"touch", "-h", "-d", "@" + std::to_string(seconds)};
    if (only.empty()) {
      auto all = run_command({"sh", "-c",
                              "find '" + root.string() + "' -print0 | xargs -0 touch -h -d @" +
                                  std::to_string(seconds)});
      ASSERT_TRUE(all.ok()) << all.error_output;
      return;
    }
    for (const auto& p : only) argv.push_back((root / p).string());
    auto some = run_command(argv);
    ASSERT_TRUE(some.ok()) << some.error_output;
  }

  // BASE: tag_-1. TARGET: tag_-2 (built, then the crafted layer on top).
  void build_images() {
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    fs::path v1 = work() / "v1";
    for (int i = 0; i < 30; ++i)
      write_file(v1 / "app" / "src" / ("m" + std::to_string(i) + ".js"), random_text(2000, i));
    write_file(v1 / "app" / "data.bin", random_text(200000, 99));
    write_file(v1 / "app" / "same.txt", "unchanged content\n");
    write_file(v1 / "app" / "gone.txt", "removed in v2\n");
    write_file(v1 / "app" / "f2d", "a file that becomes a directory\n");
    write_file(v1 / "app" / "d2f" / "child1", "hidden when d2f becomes a file\n");
    write_file(v1 / "app" / "d2f" / "child2", "this one too\n");
    for (const char* name : {"a", "b", "c"})
      write_file(v1 / "app" / "opq" / name, std::string("opaque child ") + name + "\n");
    write_file(v1 / "app" / "olddir" / "sub" / "x", "x\n");
    write_file(v1 / "app" / "olddir" / "sub" / "y", "y\n");
    write_file(v1 / "app" / "olddir" / "z", "z\n");

    fs::path v2 = work() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    fs::remove(v2 / "app" / "gone.txt");
    fs::remove(v2 / "app" / "src" / "m7.js");
    fs::remove_all(v2 / "app" / "olddir");
    fs::remove(v2 / "app" / "f2d");
    write_file(v2 / "app" / "f2d" / "inner", "inside the new directory\n");
    fs::remove_all(v2 / "app" / "d2f");
    write_file(v2 / "app" / "d2f", "now a file\n");
    write_file(v2 / "app" / "src" / "m3.js", random_text(2100, 1003));
    write_file(v2 / "app" / "src" / "new.js", "export const added = true;\n");
    write_file(v2 / "app" / "data.bin", random_text(200000, 100));
    write_file(v2 / "app" / "version", "2.0.0\n");

    // Unchanged files keep their mtime from one release to the next.
    for (const fs::path& dir : {v1, v2}) {
      auto chmod = run_command({"chmod", "-R", "u=rwX,go=rX", dir.string()});
      ASSERT_TRUE(chmod.ok()) << chmod.error_output;
      ASSERT_NO_FATAL_FAILURE(set_mtimes(dir, kFixedTime));
    }
    ASSERT_NO_FATAL_FAILURE(
        set_mtimes(v2, kFixedTime + 1000,
                   {"app", "app/src", "app/src/m3.js", "app/src/new.js", "app/data.bin",
                    "app/version", "app/f2d", "app/f2d/inner", "app/d2f"}));

    write_file(v1 / "Dockerfile", "FROM " + std::string(kBaseImageRef) +
                                      "\n"
                                      "COPY app /app\n"
                                      "RUN echo shared-v1 > /app/hl-a && ln /app/hl-a /app/hl-b && "
                                      "ln -s src/m1.js /app/link\n"
                                      "ENV APP_VERSION=1.0.0\n"
                                      "CMD [\"/bin/sh\", \"-c\", \"echo v1\"]\n");
    write_file(v2 / "Dockerfile", "FROM " + std::string(kBaseImageRef) +
                                      "\n"
                                      "COPY app /app\n"
                                      "RUN echo shared-v2 > /app/hl-a && ln /app/hl-a /app/hl-b && "
                                      "ln -s src/m2.js /app/link\n"
                                      "ENV APP_VERSION=2.0.0\n"
                                      "LABEL org.example.version=2.0.0\n"
                                      "WORKDIR /app\n"
                                      "EXPOSE 8080\n"
                                      "CMD [\"/bin/sh\", \"-c\", \"cat /app/version\"]\n");
    base_id_ = build(v1, base_ref());
    ASSERT_FALSE(base_id_.empty());
    std::string built = build(v2, tag_ + "-2-built");
    ASSERT_FALSE(built.empty());
    ASSERT_NO_FATAL_FAILURE(load_crafted_layer(tag_ + "-2-built", target_ref()));
  }

  // TARGET = the built image + the crafted layer, loaded through the API.
  void load_crafted_layer(const std::string& built, const std::string& ref) {
    fs::path layer_path = work() / "crafted.tar";
    auto made = run_command({"python3", "-c", kCraftedLayer, layer_path.string(),
                             std::to_string(kFixedTime), kCapabilityHex});
    ASSERT_TRUE(made.ok()) << made.error_output;
    auto layer = read_small_file(layer_path, 1 << 20);
    ASSERT_TRUE(layer) << layer.error().message();
    auto image_ref = ImageRef::parse(built);
    ASSERT_TRUE(image_ref);
    auto image = open_image(*image_ref, engine_.get());
    ASSERT_TRUE(image) << image.error().message();
    auto config = nlohmann::ordered_json::parse((*image)->info().config_bytes);
    Digest diff_id = Digest::of(*layer);
    config["rootfs"]["diff_ids"].push_back(diff_id.str());
    config["history"].push_back({{"created_by", "diff_image_test: crafted layer"}});
    std::string config_bytes = config.dump();
    StringSink archive;
    DockerArchiveWriter writer(archive, config_bytes, {ref});
    for (const auto& l : (*image)->info().layers) ASSERT_TRUE(writer.skip_layer(l.diff_id));
    MemorySource source(*layer);
    auto added = writer.add_layer(diff_id, layer->size(), source);
    ASSERT_TRUE(added) << added.error().message();
    ASSERT_TRUE(writer.finish());
    MemorySource upload(archive.data());
    auto loaded = engine_->load_image(upload);
    ASSERT_TRUE(loaded) << loaded.error().message();
    created_.push_back(ref);
    auto detail = engine_->inspect_image(ref);
    ASSERT_TRUE(detail) << detail.error().message();
    target_id_ = detail->id;
  }

  std::string base_ref() const { return tag_ + "-1"; }
  std::string target_ref() const { return tag_ + "-2"; }
  std::string diff_ref() const { return tag_ + "-2-diff"; }

  Result<DiffImageResult> run_diff_image(const std::string& tag) {
    DiffImageCommandOptions options;
    options.base_image = base_ref();
    options.target_image = target_ref();
    options.tags = {tag};
    options.engine = sender_engine();
    created_.push_back(tag);
    return make_diff_image(options);
  }

  nlohmann::json inspect(const std::string& ref) {
    auto out = run_docker(sender_engine(), {"image", "inspect", ref});
    EXPECT_TRUE(out.ok()) << out.error_output;
    auto json = nlohmann::json::parse(out.output, nullptr, false);
    EXPECT_TRUE(json.is_array() && json.size() == 1) << out.output;
    return json.is_array() && !json.empty() ? json[0] : nlohmann::json();
  }

  std::unique_ptr<TempDir> scratch_;
  std::unique_ptr<EngineClient> engine_;
  std::string tag_;
  std::string base_id_, target_id_;
  std::vector<std::string> created_;
};

uint64_t file_bytes(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  EXPECT_FALSE(ec) << path << ": " << ec.message();
  return ec ? 0 : size;
}

uint64_t gzip_bytes(const fs::path& path) {
  auto out = run_command({"sh", "-c", "gzip -6 -n -c '" + path.string() + "' | wc -c"});
  EXPECT_TRUE(out.ok()) << out.error_output;
  return std::stoull(out.output);
}

TEST_F(DiffImageTest, BaseLayersPlusOneLayerGiveTheTargetFileSystem) {
  ASSERT_NO_FATAL_FAILURE(build_images());
  auto result = run_diff_image(diff_ref());
  ASSERT_TRUE(result) << result.error().message();
  std::printf(
      "%s",
      format_diff_image_result(*result, {base_ref(), target_ref(), {}, "", false, false}).c_str());

  // (b) BASE's layers plus exactly one; TARGET's config plus the labels.
  auto base_info = inspect(base_ref());
  auto target_info = inspect(target_ref());
  auto diff_info = inspect(diff_ref());
  ASSERT_TRUE(diff_info.is_object());
  EXPECT_EQ(diff_info["Id"], result->image_id);
  auto base_layers = base_info["RootFS"]["Layers"];
  auto diff_layers = diff_info["RootFS"]["Layers"];
  ASSERT_EQ(diff_layers.size(), base_layers.size() + 1);
  for (size_t i = 0; i < base_layers.size(); ++i) EXPECT_EQ(diff_layers[i], base_layers[i]);
  EXPECT_EQ(diff_layers.back(), result->layer_diff_id.str());
  EXPECT_LT(base_layers.size() + 1, target_info["RootFS"]["Layers"].size() + 1);
  for (const char* key : {"Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts"})
    EXPECT_EQ(diff_info["Config"][key], target_info["Config"][key]) << key;
  auto labels = target_info["Config"]["Labels"];
  labels[kDiffImageBaseLabel] = base_id_;
  labels[kDiffImageTargetLabel] = target_id_;
  EXPECT_EQ(diff_info["Config"]["Labels"], labels);
  auto history = run_docker(sender_engine(),
                            {"history", "--no-trunc", "--format", "{{.CreatedBy}}", diff_ref()});
  ASSERT_TRUE(history.ok()) << history.error_output;
  EXPECT_EQ(history.output.substr(0, history.output.find('\n')),
            "deltasend diff-image: changes from " + base_ref() + " to " + target_ref());

  // (a) The file systems, as the engine exports them.
  auto base_tree = reference_tree(sender_engine(), base_ref(), work(), "base");
  ASSERT_TRUE(base_tree) << base_tree.error().message();
  auto target_tree = reference_tree(sender_engine(), target_ref(), work(), "target");
  ASSERT_TRUE(target_tree) << target_tree.error().message();
  auto diff_tree = reference_tree(sender_engine(), diff_ref(), work(), "diff");
  ASSERT_TRUE(diff_tree) << diff_tree.error().message();
  const auto& want = target_tree->entries;
  const auto& got = diff_tree->entries;
  size_t compared = 0;
  for (const auto& [path, entry] : want.items()) {
    ASSERT_TRUE(got.contains(path)) << "/" << path << " is missing from the diff image";
    auto expected = entry;
    auto actual = got[path];
    if (is_container_init_path(path)) {
      expected.erase("mtime_ns");
      actual.erase("mtime_ns");
    }
    EXPECT_EQ(actual, expected) << "/" << path;
    ++compared;
  }
  for (const auto& [path, entry] : got.items())
    EXPECT_TRUE(want.contains(path)) << "/" << path << " should not be in the diff image";
  EXPECT_GT(compared, 300u);  // busybox applet links + the app
  // Sanity: the scenario really has each case, as TARGET's file system shows it.
  const auto& old = base_tree->entries;
  EXPECT_EQ(want["app/f2d"]["type"], "d");
  EXPECT_EQ(old["app/f2d"]["type"], "f");
  EXPECT_EQ(want["app/d2f"]["type"], "f");
  EXPECT_TRUE(old.contains("app/d2f/child1"));
  EXPECT_FALSE(want.contains("app/olddir"));
  EXPECT_TRUE(old.contains("app/olddir/sub/x"));
  EXPECT_FALSE(want.contains("app/gone.txt"));
  EXPECT_EQ(want["app/link"]["link"], "src/m2.js");
  EXPECT_EQ(want["app/hl-a"]["links"], nlohmann::json::array({"app/hl-b"}));
  EXPECT_EQ(want["app/hard-new"]["links"], nlohmann::json::array({"app/same.txt"}));
  EXPECT_EQ(want["app/same.txt"]["sha256"], old["app/same.txt"]["sha256"]);
  EXPECT_EQ(want["app/same.txt"]["mtime_ns"], old["app/same.txt"]["mtime_ns"]);
  EXPECT_FALSE(want.contains("app/opq/a"));
  EXPECT_TRUE(want.contains("app/opq/new"));
  EXPECT_EQ(want["opt/cap/bind-tool"]["xattrs"]["security.capability"], kCapabilityHex);
  EXPECT_NE(want["app/src"]["mtime_ns"], old["app/src"]["mtime_ns"]);
  // How the layer said it: one whiteout for the removed tree, an opaque marker.
  EXPECT_EQ(result->layer_counts.opaque_dirs, 1u);
  EXPECT_EQ(result->layer_counts.whiteouts, 3u);  // gone.txt, olddir, src/m7.js

  // (c) Sizes: the extra layer as `docker save` writes it, against the
  // changed-files tar of the same change.
  fs::path saved = work() / "saved";
  fs::create_directories(saved);
  auto save =
      run_docker(sender_engine(), {"save", "-o", (work() / "diff.tar").string(), diff_ref()});
  ASSERT_TRUE(save.ok()) << save.error_output;
  auto untar = run_command({"tar", "-xf", (work() / "diff.tar").string(), "-C", saved.string()});
  ASSERT_TRUE(untar.ok()) << untar.error_output;
  auto manifest = read_small_file(saved / "manifest.json", 1 << 20);
  ASSERT_TRUE(manifest);
  auto manifest_json = nlohmann::json::parse(*manifest);
  fs::path layer_tar = saved / manifest_json[0]["Layers"].back().get<std::string>();
  uint64_t layer_bytes = file_bytes(layer_tar);
  uint64_t layer_gzip = gzip_bytes(layer_tar);
  EXPECT_EQ(layer_bytes, result->layer_tar_bytes);

  // The changed-file lists, from the walker's comparison of BASE and TARGET.
  // "content": added paths and paths whose type, content or link target
  // changed (measure.sh's changed_files: metadata-only changes left out).
  // "exact": every path whose entry differs in anything the walker sees
  // (also mode, owner, mtime, xattrs, hard links): what a changed-files tar
  // must carry to give TARGET's file system, as the extra layer does.
  std::string content_list, exact_list;
  size_t content_paths = 0, exact_paths = 0;
  std::vector<std::string> removed;
  for (const auto& [path, entry] : want.items()) {
    if (is_container_init_path(path)) continue;
    if (!old.contains(path) || content_key(old[path]) != content_key(entry)) {
      content_list += path + std::string(1, '\0');
      ++content_paths;
    }
    if (!old.contains(path) || old[path] != entry) {
      exact_list += path + std::string(1, '\0');
      ++exact_paths;
    }
  }
  for (const auto& [path, entry] : old.items()) {
    if (want.contains(path) || is_container_init_path(path)) continue;
    if (removed.empty() || !path.starts_with(removed.back() + "/")) removed.push_back(path);
  }
  std::string removed_list;
  for (const auto& p : removed) removed_list += "/" + p + "\n";
  write_file(work() / "meta" / ".removed", removed_list);
  // GNU tar of the list (--no-recursion, numeric owners), then a tar of the
  // ".removed" list, concatenated as measure.sh does; its bytes, and gzip -6 -n.
  auto changed_files_tar = [&](const std::string& name, const std::string& list,
                               const std::string& options) {
    write_file(work() / (name + ".list"), list);
    fs::path tar = work() / (name + ".tar");
    auto made = run_command({"sh", "-c",
                             "(tar --no-recursion --null --numeric-owner " + options + " -C '" +
                                 target_tree->root.string() + "' -T '" +
                                 (work() / (name + ".list")).string() + "' -cf - && tar -C '" +
                                 (work() / "meta").string() + "' -cf - .removed) > '" +
                                 tar.string() + "'"});
    EXPECT_TRUE(made.ok()) << made.error_output;
    return std::make_pair(file_bytes(tar), gzip_bytes(tar));
  };
  auto [content_bytes, content_gzip] = changed_files_tar("content", content_list, "");
  // POSIX format for the xattr (without the atime/ctime records GNU tar adds).
  auto [exact_bytes, exact_gzip] = changed_files_tar(
      "exact", exact_list,
      "--format=posix --pax-option=delete=atime,delete=ctime --xattrs --xattrs-include='*'");
  std::printf(
      "extra layer: %llu bytes tar, %llu bytes gzip -6\n"
      "changed-files tar, content changes (%zu paths + .removed of %zu): %llu bytes tar, %llu "
      "bytes gzip -6\n"
      "changed-files tar, every change (%zu paths + .removed of %zu): %llu bytes tar, %llu bytes "
      "gzip -6\n"
      "deltasend's own changed-files measure (content changes, no record padding): %llu / %llu\n",
      static_cast<unsigned long long>(layer_bytes), static_cast<unsigned long long>(layer_gzip),
      content_paths, removed.size(), static_cast<unsigned long long>(content_bytes),
      static_cast<unsigned long long>(content_gzip), exact_paths, removed.size(),
      static_cast<unsigned long long>(exact_bytes), static_cast<unsigned long long>(exact_gzip),
      static_cast<unsigned long long>(result->changed_files.tar_bytes),
      static_cast<unsigned long long>(result->changed_files.gzip_bytes));
  RecordProperty("extra_layer_bytes", std::to_string(layer_bytes));
  RecordProperty("extra_layer_gzip_bytes", std::to_string(layer_gzip));
  RecordProperty("changed_files_content_tar_bytes", std::to_string(content_bytes));
  RecordProperty("changed_files_content_gzip_bytes", std::to_string(content_gzip));
  RecordProperty("changed_files_exact_tar_bytes", std::to_string(exact_bytes));
  RecordProperty("changed_files_exact_gzip_bytes", std::to_string(exact_gzip));
  EXPECT_LT(content_paths, exact_paths);  // the scenario has metadata-only changes
  // Uncompressed: no bigger than even the content-only changed-files tar.
  EXPECT_LE(layer_bytes, content_bytes);
  // Compressed: no bigger than a changed-files tar.gz of the same change.
  EXPECT_LE(layer_bytes, exact_bytes);
  EXPECT_LE(layer_gzip, exact_gzip);

  // (d) It runs.
  auto run = run_docker(sender_engine(), {"run", "--rm", "--network", "none", diff_ref()});
  EXPECT_TRUE(run.ok()) << run.error_output;
  EXPECT_EQ(run.output, "2.0.0\n");
  auto shell = run_docker(sender_engine(), {"run", "--rm", "--network", "none", diff_ref(),
                                            "/bin/sh", "-c", "ls /app/opq && cat hard-new"});
  EXPECT_TRUE(shell.ok()) << shell.error_output;
  EXPECT_EQ(shell.output, "new\nunchanged content\n");

  // The command line, again: the same inputs give the same image.
  std::string again_ref = tag_ + "-2-diff-again";
  created_.push_back(again_ref);
  auto cli = run_command({DELTASEND_BINARY, "--engine", sender_engine(), "diff-image", "--json",
                          base_ref(), target_ref(), "-t", again_ref});
  ASSERT_TRUE(cli.ok()) << cli.error_output;
  auto again = nlohmann::json::parse(cli.output, nullptr, false);
  ASSERT_TRUE(again.is_object()) << cli.output;
  EXPECT_EQ(again["image"]["id"], result->image_id);
  EXPECT_EQ(again["layer"]["diff_id"], result->layer_diff_id.str());
  EXPECT_EQ(again["layer"]["tar_bytes"], layer_bytes);
  EXPECT_EQ(again["base"]["layers_loaded"], 0);
  EXPECT_EQ(again["files"]["removed"], result->files.removed);
  EXPECT_EQ(inspect(again_ref)["Id"], result->image_id);
}

TEST_F(DiffImageTest, MissingBaseIsAClearError) {
  DiffImageCommandOptions options;
  options.base_image = tag_ + "-no-such-base";
  options.target_image = std::string(kBaseImageRef);
  options.tags = {tag_ + "-never"};
  options.engine = sender_engine();
  ASSERT_TRUE(ensure_base_image(sender_engine()));
  auto result = make_diff_image(options);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), ErrorCode::kNotFound) << result.error().message();
  EXPECT_NE(result.error().message().find(tag_ + "-no-such-base"), std::string::npos)
      << result.error().message();
  EXPECT_FALSE(engine_->inspect_image(tag_ + "-never"));
}

}  // namespace
}  // namespace deltasync::testing
