// `deltasend diff` must agree with a reference computed another way: both
// images are instantiated (docker create), their root file systems exported
// by the engine (docker export) and unpacked with GNU tar, and every path is
// classified by a small Python walker (type + sha256 / link target; see
// tests/support/reference_tree.h). The added / removed / changed sets must
// be equal to deltasend's --json output.
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "tests/support/reference_tree.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

class DiffReferenceTest : public EngineTest {
 protected:
  // path -> "d" / "f:<sha256>" / "l:<target>" / "o" (tests/support/reference_tree.h).
  nlohmann::json classified_tree(const std::string& image, const fs::path& work) {
    auto tree =
        reference_tree(sender_engine(), image, work, "diffref-" + std::to_string(counter_++));
    EXPECT_TRUE(tree) << tree.error().message();
    if (!tree) return nlohmann::json();
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [path, entry] : tree->entries.items()) out[path] = content_key(entry);
    return out;
  }
  int counter_ = 0;
};

std::set<std::string> paths_of(const nlohmann::json& array) {
  std::set<std::string> out;
  for (const auto& item : array) out.insert(item.at("path").get<std::string>().substr(1));
  return out;
}

TEST_F(DiffReferenceTest, AgreesWithUnpackedRootFilesystems) {
  ASSERT_TRUE(ensure_base_image(sender_engine()));
  auto temp = TempDir::create(default_temp_parent(), "diffref-");
  ASSERT_TRUE(temp);
  fs::path work = temp->path();

  // Version 1: an app directory, links, and a directory removed later.
  fs::path v1 = work / "v1";
  for (int i = 0; i < 50; ++i)
    write_file(v1 / "app" / "src" / ("m" + std::to_string(i) + ".js"), random_text(2000, i));
  write_file(v1 / "app" / "data.bin", random_text(300000, 99));
  write_file(v1 / "app" / "gone.txt", "removed in v2");
  write_file(v1 / "app" / "same.txt", "unchanged");
  write_file(
      v1 / "Dockerfile",
      "FROM deltasync-base:busybox\n"
      "COPY app /app\n"
      "RUN ln -s src/m1.js /app/link && ln /app/same.txt /app/hard && mkdir -p /app/olddir/sub && "
      "echo x > /app/olddir/sub/f && echo tmp > /tmp/scratch\n");
  // Version 2: edits, additions, deletions (some through RUN rm whiteouts).
  fs::path v2 = work / "v2";
  fs::copy(v1, v2, fs::copy_options::recursive);
  fs::remove(v2 / "app" / "gone.txt");
  write_file(v2 / "app" / "src" / "m3.js", random_text(2100, 1003));
  write_file(v2 / "app" / "src" / "new.js", "export const added = true;\n");
  write_file(v2 / "app" / "data.bin", random_text(300000, 100));
  write_file(
      v2 / "Dockerfile",
      "FROM deltasync-base:busybox\n"
      "COPY app /app\n"
      "RUN ln -s src/m2.js /app/link && ln /app/same.txt /app/hard && mkdir -p /app/olddir/sub && "
      "echo x > /app/olddir/sub/f && echo tmp > /tmp/scratch\n"
      "RUN rm -rf /app/olddir /tmp/scratch && rm /app/src/m7.js && mkdir /app/newdir\n");

  std::string tag = "ds-diffref:" + std::to_string(::getpid());
  auto id1 = build_image(sender_engine(), v1, tag + "-1");
  ASSERT_TRUE(id1) << id1.error().message();
  auto id2 = build_image(sender_engine(), v2, tag + "-2");
  ASSERT_TRUE(id2) << id2.error().message();

  auto diff = run_command(
      {DELTASEND_BINARY, "--engine", sender_engine(), "diff", "--json", tag + "-1", tag + "-2"});
  ASSERT_TRUE(diff.ok()) << diff.error_output;
  auto ours = nlohmann::json::parse(diff.output, nullptr, false);
  ASSERT_FALSE(ours.is_discarded()) << diff.output;

  auto ref_old = classified_tree(tag + "-1", work);
  auto ref_new = classified_tree(tag + "-2", work);
  ASSERT_TRUE(ref_old.is_object());
  ASSERT_TRUE(ref_new.is_object());
  std::set<std::string> added, removed, changed;
  for (auto& [path, value] : ref_new.items()) {
    if (!ref_old.contains(path)) {
      added.insert(path);
    } else if (ref_old[path] != value) {
      changed.insert(path);
    }
  }
  for (auto& [path, value] : ref_old.items()) {
    if (!ref_new.contains(path)) removed.insert(path);
  }

  EXPECT_EQ(paths_of(ours["added"]), added);
  EXPECT_EQ(paths_of(ours["removed"]), removed);
  EXPECT_EQ(paths_of(ours["changed"]), changed);
  // Sanity: the scenario really exercises each kind.
  EXPECT_TRUE(added.count("app/src/new.js"));
  EXPECT_TRUE(added.count("app/newdir"));
  EXPECT_TRUE(removed.count("app/gone.txt"));
  EXPECT_TRUE(removed.count("app/olddir/sub/f"));
  EXPECT_TRUE(removed.count("app/src/m7.js"));
  EXPECT_TRUE(changed.count("app/data.bin"));
  EXPECT_TRUE(changed.count("app/link"));
  EXPECT_EQ(ours["totals"]["unchanged"].get<uint64_t>() > 40, true);

  remove_image_cli(sender_engine(), tag + "-1");
  remove_image_cli(sender_engine(), tag + "-2");
}

}  // namespace
}  // namespace deltasync::testing
