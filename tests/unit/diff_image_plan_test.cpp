// The extra layer of `deltasend diff-image`, without an engine: layers made
// with our tar writer, a BASE and a TARGET tree, the plan, the written layer,
// and the overlay of BASE + that layer compared with TARGET (kind, content,
// link target, mode, owner, mtime, xattrs, hard-link groups). Covers the
// cases the layer must get right: added / changed / removed files, a deleted
// directory (one whiteout), a file replaced by a directory and back, a
// symlink change, an opaque directory in TARGET, a new hard link to an
// unchanged file, a link group broken up, a hard link whose content entry is
// deleted by a later layer (it becomes the regular file), an xattr, parent
// directories with TARGET's metadata, and a reproducible byte stream. And
// that the check does fail when an entry is missing.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "common/index/image_tree.h"
#include "common/io/file.h"
#include "common/tar/tar_entry.h"
#include "common/tar/tar_split.h"
#include "sender/diffimage/header_edit.h"
#include "sender/diffimage/layer_plan.h"
#include "sender/diffimage/layer_writer.h"
#include "sender/diffimage/tree_check.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

const std::string kCapability(
    "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00",
    20);

struct Spec {
  std::string path;
  char type = '0';
  std::string content;
  std::string link;
  uint32_t mode = 0644;
  int64_t mtime = 1000;
  std::map<std::string, std::string> pax;
};

Spec dir(std::string path, int64_t mtime = 1000) {
  return Spec{std::move(path), '5', "", "", 0755, mtime, {}};
}
Spec file(std::string path, std::string content, int64_t mtime = 1000) {
  return Spec{std::move(path), '0', std::move(content), "", 0644, mtime, {}};
}
Spec symlink(std::string path, std::string target) {
  return Spec{std::move(path), '2', "", std::move(target), 0777, 1000, {}};
}
Spec hardlink(std::string path, std::string target) {
  return Spec{std::move(path), '1', "", std::move(target), 0644, 1000, {}};
}

std::string make_tar(const std::vector<Spec>& specs) {
  std::string out;
  for (const Spec& s : specs) {
    TarHeaderSpec h;
    h.path = s.path;
    h.type = s.type;
    h.size = s.type == '0' ? s.content.size() : 0;
    h.mode = s.mode;
    h.mtime = s.mtime;
    h.link_target = s.link;
    h.pax = s.pax;
    out += build_tar_header(h);
    if (h.size) {
      out += s.content;
      out.append(tar_padding(s.content.size()), '\0');
    }
  }
  out.append(2 * kTarBlock, '\0');
  return out;
}

class DiffImagePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "diff-image-plan-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    scratch_ = std::make_unique<TempDir>(std::move(*dir));
  }

  // Writes a layer tar to a file and indexes it; returns its index.
  const LayerIndex* add_layer(const std::string& tar) {
    auto path = scratch_->path() / ("layer" + std::to_string(indexes_.size()) + ".tar");
    testing::write_file(path, tar);
    auto fd = open_for_read(path);
    EXPECT_TRUE(fd) << fd.error().message();
    FileSource source(fd->get(), 0, tar.size(), path.string());
    auto index = build_layer_index(source, Digest::of(tar), path.string());
    EXPECT_TRUE(index) << index.error().message();
    indexes_.push_back(std::make_unique<LayerIndex>(std::move(*index)));
    fds_[indexes_.back().get()] = std::move(*fd);
    return indexes_.back().get();
  }

  std::vector<int> fds_of(const std::vector<const LayerIndex*>& layers) {
    std::vector<int> out;
    for (const auto* l : layers) out.push_back(fds_.at(l).get());
    return out;
  }

  // Writes `plan` and returns the layer's bytes.
  std::string write(const DiffLayerPlan& plan, const std::vector<const LayerIndex*>& target) {
    StringSink sink;
    auto written = write_diff_layer(plan, target, fds_of(target), sink);
    EXPECT_TRUE(written) << written.error().message();
    if (written) {
      EXPECT_EQ(written->size, sink.data().size());
      EXPECT_EQ(written->diff_id, Digest::of(sink.data()));
    }
    return sink.data();
  }

  // BASE's layers + `layer` compared with TARGET.
  TreeCheck check(const std::vector<const LayerIndex*>& base, const std::string& layer,
                  const ImageTree& target_tree, const std::vector<const LayerIndex*>& target) {
    const LayerIndex* extra = add_layer(layer);
    std::vector<const LayerIndex*> layers = base;
    layers.push_back(extra);
    return compare_trees(target_tree, target, build_image_tree(layers), layers);
  }

  std::unique_ptr<TempDir> scratch_;
  std::vector<std::unique_ptr<LayerIndex>> indexes_;
  std::map<const LayerIndex*, UniqueFd> fds_;
};

// BASE: one layer. TARGET: BASE's layer + two more.
struct Scenario {
  std::vector<const LayerIndex*> base, target;
};

Scenario build_scenario(DiffImagePlanTest* test,
                        const std::function<const LayerIndex*(const std::string&)>& add) {
  (void)test;
  Scenario s;
  const LayerIndex* l0 = add(make_tar({
      dir("app", 100),
      file("app/same.txt", "same content\n"),
      file("app/changed.txt", "old content\n"),
      file("app/gone.txt", "removed\n"),
      dir("app/olddir"),
      file("app/olddir/a", "a"),
      dir("app/olddir/sub"),
      file("app/olddir/sub/b", "b"),
      file("app/f2d", "a file that becomes a directory\n"),
      dir("app/d2f"),
      file("app/d2f/child", "hidden when d2f becomes a file\n"),
      symlink("app/link", "same.txt"),
      dir("app/opq"),
      file("app/opq/a", "1"),
      file("app/opq/b", "2"),
      file("app/opq/c", "3"),
      file("app/hl-src", "shared inode\n"),
      hardlink("app/hl-old", "app/hl-src"),
      dir("etc"),
      file("etc/conf", "unchanged\n"),
      file("tmp-gone", "removed at the root\n"),
  }));
  Spec changed = file("app/changed.txt", "new content, longer than before\n", 2000);
  changed.pax["SCHILY.xattr.security.capability"] = kCapability;
  const LayerIndex* l1 = add(make_tar({
      dir("app", 200),
      changed,
      file("app/.wh.gone.txt", ""),
      file("app/.wh.olddir", ""),
      dir("app/f2d", 300),
      file("app/f2d/inner", "inside the new directory\n"),
      file("app/d2f", "now a file\n"),
      file("app/.wh.link", ""),
      symlink("app/link", "changed.txt"),
      dir("app/opq", 400),
      file("app/opq/.wh..wh..opq", ""),
      file("app/opq/new", "the only child now\n"),
      file("app/same.txt", "same content\n"),
      hardlink("app/hard-new", "app/same.txt"),
      file("app/hl-old", "shared inode\n"),
      file("app/solo", "content of a link whose first name goes\n"),
      hardlink("app/solo-link", "app/solo"),
      file(".wh.tmp-gone", ""),
  }));
  const LayerIndex* l2 = add(make_tar({dir("app", 500), file("app/.wh.solo", "")}));
  s.base = {l0};
  s.target = {l0, l1, l2};
  return s;
}

const PlannedEntry* find(const DiffLayerPlan& plan, const std::string& path) {
  for (const auto& e : plan.entries)
    if (e.path == path) return &e;
  return nullptr;
}

TEST_F(DiffImagePlanTest, LayerTurnsBaseIntoTarget) {
  Scenario s = build_scenario(this, [&](const std::string& t) { return add_layer(t); });
  ImageTree base = build_image_tree(s.base);
  ImageTree target = build_image_tree(s.target);
  DiffLayerPlan plan = plan_diff_layer(base, s.base, target, s.target);
  std::string layer = write(plan, s.target);
  TreeCheck result = check(s.base, layer, target, s.target);
  EXPECT_EQ(result.difference_count, 0u);
  for (const auto& d : result.differences) ADD_FAILURE() << d;
  EXPECT_EQ(result.paths, target.files.size());

  std::vector<std::string> paths;
  for (const auto& e : plan.entries) paths.push_back(e.path);
  std::string listing;
  for (const auto& p : paths) listing += p + "\n";
  SCOPED_TRACE(listing);

  // Deletions: one whiteout per deleted subtree, none where a replacement hides.
  EXPECT_NE(find(plan, "app/.wh.gone.txt"), nullptr);
  EXPECT_NE(find(plan, "app/.wh.olddir"), nullptr);
  EXPECT_NE(find(plan, ".wh.tmp-gone"), nullptr);
  for (const auto& p : paths) {
    EXPECT_FALSE(p.starts_with("app/olddir/")) << p;
    EXPECT_NE(p, "app/.wh.f2d");
    EXPECT_NE(p, "app/.wh.d2f");
    EXPECT_NE(p, "app/d2f/.wh.child");
    EXPECT_NE(p, "app/opq/.wh.a");
    EXPECT_NE(p, "app/.wh.link");
  }
  // Three children of app/opq removed, its new content all in the layer: opaque.
  const PlannedEntry* opq = find(plan, "app/opq/.wh..wh..opq");
  ASSERT_NE(opq, nullptr);
  EXPECT_EQ(opq->op, PlannedEntry::Op::kOpaque);
  EXPECT_EQ(plan.counts.opaque_dirs, 1u);
  EXPECT_EQ(plan.counts.whiteouts, 3u);
  // Parents with TARGET's header; untouched directories and files left out.
  const PlannedEntry* app = find(plan, "app");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(target.files.at("app").mtime, 500);
  EXPECT_EQ(find(plan, "etc"), nullptr);
  EXPECT_EQ(find(plan, "etc/conf"), nullptr);
  EXPECT_EQ(find(plan, "app/gone.txt"), nullptr);
  // New hard link to an unchanged file: the file comes along, the link last.
  const PlannedEntry* same = find(plan, "app/same.txt");
  const PlannedEntry* hard_new = find(plan, "app/hard-new");
  ASSERT_NE(same, nullptr);
  ASSERT_NE(hard_new, nullptr);
  EXPECT_FALSE(same->is_hardlink());
  EXPECT_TRUE(hard_new->is_hardlink());
  EXPECT_EQ(hard_new->link_target, "app/same.txt");
  EXPECT_EQ(plan.entries.back().is_hardlink(), true);
  // A link group broken up: the path that left it, not its old partner.
  EXPECT_NE(find(plan, "app/hl-old"), nullptr);
  EXPECT_EQ(find(plan, "app/hl-src"), nullptr);
  // The link whose content entry was deleted becomes the regular file.
  const PlannedEntry* solo = find(plan, "app/solo-link");
  ASSERT_NE(solo, nullptr);
  EXPECT_EQ(solo->op, PlannedEntry::Op::kRetype);
  EXPECT_EQ(solo->type, '0');
  EXPECT_GT(solo->payload_size, 0u);
  // Order: a directory, its opaque marker, then its entries.
  auto at = [&](const std::string& p) {
    return std::find(paths.begin(), paths.end(), p) - paths.begin();
  };
  EXPECT_LT(at("app"), at("app/changed.txt"));
  EXPECT_EQ(at("app/opq/.wh..wh..opq"), at("app/opq") + 1);
  EXPECT_LT(at("app/opq/.wh..wh..opq"), at("app/opq/new"));

  // The xattr travels in the copied header.
  auto parsed = build_image_tree({add_layer(layer)});
  ASSERT_TRUE(parsed.files.count("app/changed.txt"));
  EXPECT_EQ(parsed.files.at("app/changed.txt").xattrs.at("security.capability"), kCapability);
}

TEST_F(DiffImagePlanTest, LayerIsReproducible) {
  Scenario s = build_scenario(this, [&](const std::string& t) { return add_layer(t); });
  ImageTree base = build_image_tree(s.base);
  ImageTree target = build_image_tree(s.target);
  std::string first = write(plan_diff_layer(base, s.base, target, s.target), s.target);
  std::string second = write(plan_diff_layer(base, s.base, target, s.target), s.target);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(Digest::of(first), Digest::of(second));
}

TEST_F(DiffImagePlanTest, CheckFailsWhenTheLayerIsWrong) {
  Scenario s = build_scenario(this, [&](const std::string& t) { return add_layer(t); });
  ImageTree base = build_image_tree(s.base);
  ImageTree target = build_image_tree(s.target);
  DiffLayerPlan plan = plan_diff_layer(base, s.base, target, s.target);

  auto without = [&](const std::string& path) {
    DiffLayerPlan copy = plan;
    copy.entries.erase(std::remove_if(copy.entries.begin(), copy.entries.end(),
                                      [&](const PlannedEntry& e) { return e.path == path; }),
                       copy.entries.end());
    EXPECT_EQ(copy.entries.size() + 1, plan.entries.size()) << path;
    return check(s.base, write(copy, s.target), target, s.target);
  };
  auto mentions = [](const TreeCheck& c, const std::string& text) {
    for (const auto& d : c.differences)
      if (d.find(text) != std::string::npos) return true;
    return false;
  };
  TreeCheck no_whiteout = without("app/.wh.olddir");
  EXPECT_GT(no_whiteout.difference_count, 0u);
  EXPECT_TRUE(mentions(no_whiteout, "/app/olddir: present but should not be"));
  TreeCheck no_parent = without("app");
  EXPECT_TRUE(mentions(no_parent, "/app: differs (mtime)"));
  // Without the unchanged file, the new link is not one file with it.
  TreeCheck no_link_partner = without("app/same.txt");
  EXPECT_TRUE(mentions(no_link_partner, "should be one file with /app/hard-new, /app/same.txt"));
}

TEST(HeaderEdit, RetypesHardLinksKeepingTheRest) {
  std::string long_target = "dir/" + std::string(150, 'x');
  TarHeaderSpec spec;
  spec.path = "dir/" + std::string(120, 'l');  // PAX path
  spec.type = '1';
  spec.mode = 0750;
  spec.uid = 1234;
  spec.mtime = 1700000000;
  spec.link_target = long_target;  // PAX linkpath
  spec.pax["SCHILY.xattr.user.note"] = "kept";
  std::string raw = build_tar_header(spec);

  auto as_file = retype_tar_header(raw, '0', 5, "");
  ASSERT_TRUE(as_file) << as_file.error().message();
  auto as_link = retype_tar_header(raw, '1', 0, "other");
  ASSERT_TRUE(as_link) << as_link.error().message();
  auto as_long_link = retype_tar_header(*as_file, '1', 0, long_target + "-2");
  ASSERT_TRUE(as_long_link) << as_long_link.error().message();

  std::string tar = *as_file + "hello" + std::string(tar_padding(5), '\0') + *as_link +
                    *as_long_link + std::string(2 * kTarBlock, '\0');
  MemorySource source(tar);
  TarEntryReader reader(source, "retyped");
  std::vector<TarEntry> entries;
  while (true) {
    auto next = reader.next();
    ASSERT_TRUE(next) << next.error().message();
    if (!*next) break;
    entries.push_back(**next);
  }
  ASSERT_EQ(entries.size(), 3u);
  for (const auto& e : entries) {
    EXPECT_EQ(e.path, spec.path);
    EXPECT_EQ(e.mode, 0750u);
    EXPECT_EQ(e.uid, 1234u);
    EXPECT_EQ(e.mtime, 1700000000);
    EXPECT_EQ(e.xattrs.at("user.note"), "kept");
  }
  EXPECT_EQ(entries[0].type, '0');
  EXPECT_EQ(entries[0].size, 5u);
  EXPECT_EQ(entries[0].link_target, "");
  EXPECT_EQ(entries[1].type, '1');
  EXPECT_EQ(entries[1].link_target, "other");
  EXPECT_EQ(entries[2].type, '1');
  EXPECT_EQ(entries[2].link_target, long_target + "-2");
}

}  // namespace
}  // namespace deltasync
