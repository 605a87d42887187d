// Block deltas: librsync signature -> delta -> patch and local (zstd prefix)
// encode -> decode must reproduce the new file byte for byte, for files of
// several shapes (small edits, insertions, deletions, appends, unrelated
// content, empty sides, and an 80 MiB file spanning several segments). Small
// edits must give small deltas, the local delta no larger than the rsync one,
// and parallel encoding the same bytes as serial. Hostile inputs (truncated,
// garbage, wrong basis, damaged frames, output bounds) must fail as kCorrupt.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include <gtest/gtest.h>

#include "common/codec/compression.h"
#include "common/delta/block_delta.h"
#include "common/io/file.h"

namespace deltasync {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Pseudo-text from a random vocabulary with every fourth 64 KiB run random
// binary: compressible like real files, but without repeated blocks.
std::string make_content(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> words(512);
  for (auto& word : words) {
    size_t len = 3 + rng() % 8;
    for (size_t i = 0; i < len; ++i) word.push_back(static_cast<char>('a' + rng() % 26));
  }
  std::string s;
  s.reserve(n + 64);
  while (s.size() < n) {
    size_t run_end = std::min(n, s.size() + 64 * 1024);
    if (rng() % 4 == 0) {
      while (s.size() < run_end) {
        uint64_t v = rng();
        s.append(reinterpret_cast<const char*>(&v), std::min<size_t>(8, run_end - s.size()));
      }
    } else {
      while (s.size() < run_end) {
        uint64_t v = rng();
        s += words[v % words.size()];
        s.push_back((v >> 32) % 12 == 0 ? '\n' : ' ');
      }
    }
  }
  s.resize(n);
  return s;
}

std::string scatter_edits(std::string s, int edits, unsigned seed) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < edits && !s.empty(); ++i) {
    size_t at = rng() % s.size();
    for (size_t j = at; j < std::min(s.size(), at + 1 + rng() % 4); ++j)
      s[j] = static_cast<char>(s[j] ^ 0x5a);
  }
  return s;
}

struct RsyncResult {
  std::string signature;
  std::string delta;
  std::string output;
};

RsyncResult rsync_round_trip(const std::string& basis, const std::string& target) {
  RsyncResult r;
  SignatureParams params = choose_signature_params(basis.size(), target.size());
  MemorySource basis_source(basis);
  auto sig = rsync_signature(basis_source, params);
  EXPECT_TRUE(sig) << sig.error().message();
  if (!sig) return r;
  r.signature = *sig;
  auto loaded = RsyncSignature::load(r.signature);
  EXPECT_TRUE(loaded) << loaded.error().message();
  if (!loaded) return r;
  MemorySource new_source(target);
  StringSink delta;
  auto st = rsync_delta(**loaded, new_source, delta);
  EXPECT_TRUE(st) << st.error().message();
  r.delta = std::move(delta.data());
  MemoryRandomAccess basis_ra(basis);
  MemorySource delta_source(r.delta);
  StringSink out;
  st = rsync_patch(basis_ra, delta_source, out, target.size());
  EXPECT_TRUE(st) << st.error().message();
  r.output = std::move(out.data());
  return r;
}

std::string local_encode(const std::string& basis, const std::string& target,
                         const LocalDeltaParams& params) {
  MemoryRandomAccess basis_ra(basis);
  MemoryRandomAccess new_ra(target);
  StringSink delta;
  auto st = local_delta_encode(basis_ra, new_ra, params, delta);
  EXPECT_TRUE(st) << st.error().message();
  return std::move(delta.data());
}

Result<std::string> local_decode(const std::string& basis, const std::string& delta,
                                 uint64_t max_output) {
  MemoryRandomAccess basis_ra(basis);
  MemorySource delta_source(delta);
  StringSink out;
  DS_RETURN_IF_ERROR(local_delta_decode(basis_ra, delta_source, out, max_output));
  return std::move(out.data());
}

Status rsync_patch_string(const std::string& basis, const std::string& delta, uint64_t max_output,
                          std::string* out = nullptr) {
  MemoryRandomAccess basis_ra(basis);
  MemorySource delta_source(delta);
  StringSink sink;
  DS_RETURN_IF_ERROR(rsync_patch(basis_ra, delta_source, sink, max_output));
  if (out) *out = std::move(sink.data());
  return ok_status();
}

struct Shape {
  std::string name;
  std::string basis;
  std::string target;
  bool small_change;  // the delta should be a small fraction of the file
  // ... and the local delta no larger than rsync's. Not for identical files:
  // librsync merges the copies into one 11-byte command, while zstd spends a
  // dozen bytes per 128 KiB block.
  bool local_wins = small_change;
};

const char* const kShapeNames[] = {
    "identical",   "scattered_edits", "insert_1k_near_start", "deletion", "appended", "different",
    "empty_basis", "empty_new",       "both_empty",           "tiny"};

std::vector<Shape> shapes() {
  const std::string base = make_content(4 * kMiB, 1);
  std::vector<Shape> v;
  v.push_back({"identical", base, base, true, false});
  v.push_back({"scattered_edits", base, scatter_edits(base, 8, 2), true});
  {
    std::string s = base;
    s.insert(1000, make_content(1024, 3));
    v.push_back({"insert_1k_near_start", base, s, true});
  }
  {
    std::string s = base;
    s.erase(2 * kMiB, 3000);
    v.push_back({"deletion", base, s, true});
  }
  v.push_back({"appended", base, base + make_content(100 * 1024, 4), false});
  v.push_back({"different", base, make_content(4 * kMiB, 5), false});
  v.push_back({"empty_basis", "", make_content(300 * 1024, 6), false});
  v.push_back({"empty_new", base, "", false});
  v.push_back({"both_empty", "", "", false});
  v.push_back({"tiny", "abc", "abd", false});
  return v;
}

class BlockDeltaShapes : public ::testing::TestWithParam<size_t> {};

TEST_P(BlockDeltaShapes, RoundTripsAndSmallEditsGiveSmallDeltas) {
  static const std::vector<Shape> all = shapes();
  const Shape& shape = all[GetParam()];
  ASSERT_EQ(shape.name, kShapeNames[GetParam()]);
  SCOPED_TRACE(shape.name);

  RsyncResult rs = rsync_round_trip(shape.basis, shape.target);
  ASSERT_EQ(rs.output.size(), shape.target.size());
  ASSERT_TRUE(rs.output == shape.target);

  LocalDeltaParams params;
  params.level = 3;
  std::string local = local_encode(shape.basis, shape.target, params);
  auto decoded = local_decode(shape.basis, local, shape.target.size());
  ASSERT_TRUE(decoded) << decoded.error().message();
  ASSERT_TRUE(*decoded == shape.target);

  // Small segments so the 4 MiB files span several; threads must not change a byte.
  params.segment_bytes = 512 * 1024;
  params.window_margin = 64 * 1024;
  std::string serial = local_encode(shape.basis, shape.target, params);
  params.threads = 2;
  std::string parallel = local_encode(shape.basis, shape.target, params);
  EXPECT_TRUE(serial == parallel);
  decoded = local_decode(shape.basis, parallel, shape.target.size());
  ASSERT_TRUE(decoded) << decoded.error().message();
  ASSERT_TRUE(*decoded == shape.target);

  std::cout << "[ sizes    ] " << shape.name << ": new " << shape.target.size() << ", signature "
            << rs.signature.size() << ", rsync delta " << rs.delta.size() << ", local delta "
            << local.size() << " (512 KiB segments: " << serial.size() << ")\n";
  if (shape.small_change) {
    EXPECT_LT(rs.delta.size(), shape.target.size() / 100);
    EXPECT_LT(local.size(), shape.target.size() / 100);
  }
  if (shape.local_wins) {
    EXPECT_LE(local.size(), rs.delta.size());
    EXPECT_LE(serial.size(), rs.delta.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, BlockDeltaShapes,
                         ::testing::Range<size_t>(0, std::size(kShapeNames)),
                         [](const ::testing::TestParamInfo<size_t>& param_info) {
                           return kShapeNames[param_info.param];
                         });

TEST(SignatureParams, BlockAndStrongLengths) {
  // At least 1 KiB (below, signature entries cost more than they save), then
  // ~sqrt(size) in multiples of 128.
  EXPECT_EQ(choose_signature_params(0, 0).block_len, 1024u);
  EXPECT_EQ(choose_signature_params(1000, 1000).block_len, 1024u);
  EXPECT_EQ(choose_signature_params(512 * 1024, 512 * 1024).block_len, 1024u);
  EXPECT_EQ(choose_signature_params(kMiB, kMiB).block_len, 1024u);
  EXPECT_EQ(choose_signature_params(4 * kMiB, 4 * kMiB).block_len, 2048u);
  EXPECT_EQ(choose_signature_params(1ull << 40, 1).block_len, 65536u);
  SignatureParams p = choose_signature_params(80 * kMiB, 80 * kMiB);
  EXPECT_GE(p.block_len, 8192u);
  EXPECT_LE(p.block_len, 10240u);
  // 40 + log2(80 Mi) + log2(80 Mi / 9 Ki) = 40 + 27 + 14 bits -> 11 bytes.
  EXPECT_EQ(p.strong_len, 11u);
  EXPECT_EQ(choose_signature_params(0, 0).strong_len, 5u);
  EXPECT_LE(choose_signature_params(UINT64_MAX, UINT64_MAX).strong_len, 32u);
}

TEST(FileRangeRandomAccess, ReadsRangeAndReportsTruncation) {
  auto dir = TempDir::create(default_temp_parent(), "block-delta-test-");
  ASSERT_TRUE(dir);
  auto path = dir->path() / "f";
  std::string content = make_content(3 * kMiB + 17, 9);
  std::ofstream(path, std::ios::binary) << content;
  auto fd = open_for_read(path);
  ASSERT_TRUE(fd);

  FileRangeRandomAccess range(fd->get(), 1000, content.size() - 1000);
  std::string buf(content.size(), '\0');
  auto got = range.read_at(0, buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, content.size() - 1000);  // short only at the end of the range
  EXPECT_EQ(buf.substr(0, *got), content.substr(1000));
  got = range.read_at(range.size(), buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 0u);

  // A patch reading its basis from the file range.
  std::string basis = content.substr(1000);
  std::string target = scatter_edits(basis, 5, 10);
  RsyncResult rs = rsync_round_trip(basis, target);
  MemorySource delta_source(rs.delta);
  StringSink out;
  auto st = rsync_patch(range, delta_source, out, target.size());
  ASSERT_TRUE(st) << st.error().message();
  EXPECT_TRUE(out.data() == target);

  // A range beyond the file's end is truncation, not a short read.
  FileRangeRandomAccess beyond(fd->get(), 0, content.size() + 100);
  got = beyond.read_at(content.size() - 10, buf);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), ErrorCode::kCorrupt);
}

class BlockDeltaHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    basis_ = make_content(1 * kMiB, 20);
    target_ = scatter_edits(basis_, 6, 21);
    rs_ = rsync_round_trip(basis_, target_);
    ASSERT_TRUE(rs_.output == target_);
    local_ = local_encode(basis_, target_, LocalDeltaParams{});
  }
  std::string basis_;
  std::string target_;
  RsyncResult rs_;
  std::string local_;
};

TEST_F(BlockDeltaHostile, TruncatedOrGarbageRsyncDeltaIsCorrupt) {
  for (size_t cut : {size_t{0}, size_t{3}, rs_.delta.size() / 2, rs_.delta.size() - 1}) {
    auto st = rsync_patch_string(basis_, rs_.delta.substr(0, cut), target_.size());
    ASSERT_FALSE(st) << "cut " << cut;
    EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt) << st.error().message();
    EXPECT_NE(st.error().message().find("rsync patch"), std::string::npos) << st.error().message();
  }
  std::string garbage = make_content(5000, 22);
  auto st = rsync_patch_string(basis_, garbage, target_.size());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(st.error().message().find("librsync"), std::string::npos) << st.error().message();

  st = rsync_patch_string(basis_, rs_.delta + "xyz", target_.size());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt) << st.error().message();

  auto sig = RsyncSignature::load(rs_.signature.substr(0, rs_.signature.size() - 3));
  ASSERT_FALSE(sig);
  EXPECT_EQ(sig.error().code(), ErrorCode::kCorrupt) << sig.error().message();
  sig = RsyncSignature::load(garbage);
  ASSERT_FALSE(sig);
  EXPECT_EQ(sig.error().code(), ErrorCode::kCorrupt) << sig.error().message();
}

TEST_F(BlockDeltaHostile, RsyncDeltaOnShorterBasisRefersOutside) {
  auto st = rsync_patch_string(basis_.substr(0, basis_.size() / 2), rs_.delta, target_.size());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(st.error().message().find("outside"), std::string::npos) << st.error().message();
}

TEST_F(BlockDeltaHostile, OutputBeyondMaxOutputIsCorrupt) {
  auto st = rsync_patch_string(basis_, rs_.delta, target_.size() - 1);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kCorrupt) << st.error().message();
  auto decoded = local_decode(basis_, local_, target_.size() - 1);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt) << decoded.error().message();
  // Exactly the size is fine.
  EXPECT_TRUE(rsync_patch_string(basis_, rs_.delta, target_.size()));
  EXPECT_TRUE(local_decode(basis_, local_, target_.size()));
}

TEST_F(BlockDeltaHostile, DamagedLocalDeltaIsCorrupt) {
  // A flipped byte in the middle of the frame: the zstd checksum (or parsing) catches it.
  std::string damaged = local_;
  damaged[damaged.size() / 2] ^= 0x01;
  auto decoded = local_decode(basis_, damaged, target_.size());
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt) << decoded.error().message();

  // Every single-byte flip either fails as kCorrupt or (if it changes
  // nothing that matters) still decodes to the exact file.
  int failures = 0;
  for (size_t i = 0; i < local_.size(); ++i) {
    damaged = local_;
    damaged[i] ^= 0x10;
    decoded = local_decode(basis_, damaged, target_.size());
    if (decoded) {
      EXPECT_TRUE(*decoded == target_) << "flip at " << i;
    } else {
      ++failures;
      EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt)
          << "flip at " << i << ": " << decoded.error().message();
    }
  }
  EXPECT_GT(failures, static_cast<int>(local_.size()) / 2);

  for (size_t cut : {size_t{0}, size_t{4}, size_t{7}, local_.size() / 2, local_.size() - 1}) {
    decoded = local_decode(basis_, local_.substr(0, cut), target_.size());
    ASSERT_FALSE(decoded) << "cut " << cut;
    EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt) << decoded.error().message();
  }
  decoded = local_decode(basis_, std::string("DSLD\x02", 5) + local_.substr(5), target_.size());
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt);
}

TEST_F(BlockDeltaHostile, LocalWindowBeyondBasisIsCorrupt) {
  auto decoded = local_decode(basis_.substr(0, basis_.size() - 1), local_, target_.size());
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(decoded.error().message().find("outside the basis"), std::string::npos)
      << decoded.error().message();
}

TEST(LocalDeltaParams, RejectsBadParameters) {
  std::string basis = "abc";
  MemoryRandomAccess basis_ra(basis);
  MemoryRandomAccess new_ra(basis);
  StringSink sink;
  LocalDeltaParams p;
  p.segment_bytes = 0;
  auto st = local_delta_encode(basis_ra, new_ra, p, sink);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  p = LocalDeltaParams{};
  p.window_margin = 1ull << 40;
  st = local_delta_encode(basis_ra, new_ra, p, sink);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
}

double mib_per_s(uint64_t bytes, std::chrono::steady_clock::duration d) {
  double s = std::chrono::duration<double>(d).count();
  return s > 0 ? static_cast<double>(bytes) / kMiB / s : 0;
}

// ~80 MiB with 10 scattered edits and a 1 KiB insertion near the start: it
// spans several 16 MiB segments, and every segment after the insertion is
// shifted against its basis window (margin 4 MiB).
TEST(BlockDeltaLarge, EightyMiBScatteredEditsAndInsertion) {
  using Clock = std::chrono::steady_clock;
  const std::string basis = make_content(80 * kMiB, 30);
  std::string target = scatter_edits(basis, 10, 31);
  target.insert(1 * kMiB + 123, make_content(1024, 32));

  auto t0 = Clock::now();
  SignatureParams params = choose_signature_params(basis.size(), target.size());
  MemorySource basis_source(basis);
  auto sig = rsync_signature(basis_source, params);
  ASSERT_TRUE(sig) << sig.error().message();
  auto t1 = Clock::now();
  auto loaded = RsyncSignature::load(*sig);
  ASSERT_TRUE(loaded) << loaded.error().message();
  MemorySource new_source(target);
  StringSink delta;
  auto st = rsync_delta(**loaded, new_source, delta);
  ASSERT_TRUE(st) << st.error().message();
  auto t2 = Clock::now();
  std::string patched;
  st = rsync_patch_string(basis, delta.data(), target.size(), &patched);
  ASSERT_TRUE(st) << st.error().message();
  auto t3 = Clock::now();
  ASSERT_TRUE(patched == target);
  const std::string& rs_delta = delta.data();
  EXPECT_LT(rs_delta.size(), target.size() / 100);
  auto rs3 = zstd_compress(rs_delta, 3);
  auto rs19 = zstd_compress(rs_delta, 19);
  ASSERT_TRUE(rs3 && rs19);
  std::cout << "[ rsync    ] block " << params.block_len << " strong " << params.strong_len
            << ": signature " << sig->size() << " B (" << mib_per_s(basis.size(), t1 - t0)
            << " MiB/s), delta " << rs_delta.size() << " B (" << mib_per_s(target.size(), t2 - t1)
            << " MiB/s; zstd-3 " << rs3->size() << " B, zstd-19 " << rs19->size() << " B), patch "
            << mib_per_s(target.size(), t3 - t2) << " MiB/s\n";

  LocalDeltaParams lp;
  lp.segment_bytes = 16 * kMiB;
  lp.window_margin = 4 * kMiB;
  std::string reference;
  const bool slow_tests = std::getenv("DELTASYNC_SLOW_TESTS") != nullptr;
  if (!slow_tests) std::cout << "[ local    ] level 19: set DELTASYNC_SLOW_TESTS=1 to measure\n";
  for (int level : {3, 19}) {
    for (int threads : {1, 2}) {
      // Level 19 indexes each 24 MiB window into binary trees: about 0.5 MiB/s
      // here, minutes for this file, so only on request.
      if (level == 19 && (threads == 1 || !slow_tests)) continue;
      lp.level = level;
      lp.threads = threads;
      auto e0 = Clock::now();
      std::string local = local_encode(basis, target, lp);
      auto e1 = Clock::now();
      auto decoded = local_decode(basis, local, target.size());
      auto e2 = Clock::now();
      ASSERT_TRUE(decoded) << decoded.error().message();
      ASSERT_TRUE(*decoded == target);
      EXPECT_LE(local.size(), rs_delta.size());
      if (level == 3 && threads == 1) reference = local;
      if (level == 3 && threads == 2) {
        EXPECT_TRUE(local == reference);
      }
      std::cout << "[ local    ] level " << level << " threads " << threads << ": delta "
                << local.size() << " B, encode " << mib_per_s(target.size(), e1 - e0)
                << " MiB/s, decode " << mib_per_s(target.size(), e2 - e1) << " MiB/s\n";
    }
  }
}

}  // namespace
}  // namespace deltasync
