// Layer streams without an engine: base and new layers made by GNU tar, coded
// against the base, decoded, and compared byte for byte. Also what the
// coding costs in the cases it is built for (mtime-only rebuilds, small
// edits in large files, insertions) and that hostile streams are refused.
#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <gtest/gtest.h>

#include "common/delta/block_delta.h"
#include "common/index/index_codec.h"
#include "common/io/file.h"
#include "common/layerstream/layer_stream.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::random_bytes;
using testing::run_shell;
using testing::write_file;

struct IndexedTar {
  UniqueFd fd;
  LayerIndex index;
};

IndexedTar index_tar(const fs::path& tar) {
  auto source = open_file_source(tar);
  EXPECT_TRUE(source);
  HashingSource hashed(**source);
  auto index = build_layer_index(hashed, Digest(), tar.string());
  EXPECT_TRUE(index) << index.error().message();
  index->diff_id = hashed.finish();
  auto fd = open_for_read(tar);
  EXPECT_TRUE(fd);
  return IndexedTar{std::move(*fd), std::move(*index)};
}

class LayerStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "layer-stream-test-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
  }
  fs::path path(const std::string& name) { return temp_->path() / name; }

  void tar(const fs::path& dir, const fs::path& out) {
    ASSERT_EQ(0, run_shell("tar --format=gnu --sort=name -cf " + out.string() + " -C " +
                           dir.string() + " ."));
  }

  // Encodes `target` against `base`, decodes it, checks the result, returns the stream size.
  uint64_t round_trip(const fs::path& base_tar, const fs::path& target_tar, Effort effort) {
    IndexedTar base = index_tar(base_tar);
    IndexedTar target = index_tar(target_tar);
    std::vector<const LayerIndex*> layers{&base.index};
    Basis basis = Basis::build(layers);
    LayerFiles files{{base.fd.get()}};
    LayerStreamEncoder encoder(basis, files, EncoderOptions{effort, 2});
    StringSink stream;
    LayerStreamStats stats;
    auto encoded = encoder.encode(target.index, target.fd.get(), stream, stats);
    EXPECT_TRUE(encoded) << encoded.error().message();
    stats_ = stats;

    LayerStreamDecoder decoder(basis, files);
    fs::path out = path("rebuilt.tar");
    int fd = ::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    UniqueFd out_fd(fd);
    MemorySource in(stream.data());
    auto decoded = decoder.decode(in, out_fd.get(), "test layer");
    EXPECT_TRUE(decoded) << decoded.error().message();
    if (decoded) {
      EXPECT_EQ(decoded->digest, target.index.diff_id);
      EXPECT_EQ(decoded->size, fs::file_size(target_tar));
    }
    last_stream_ = stream.data();
    return stream.data().size();
  }

  // Flips one bit at `probes` places spread over a good stream of new.tar
  // against old.tar; returns how many the decoder refused. A flip may also
  // decode to the same layer (a bit the decoder never uses), never to
  // another one.
  int rejected_flips(const std::string& good, size_t probes) {
    IndexedTar base = index_tar(path("old.tar"));
    IndexedTar target = index_tar(path("new.tar"));
    std::vector<const LayerIndex*> layers{&base.index};
    Basis basis = Basis::build(layers);
    LayerFiles files{{base.fd.get()}};
    int rejected = 0;
    for (size_t at = 0; at < good.size(); at += std::max<size_t>(1, good.size() / probes)) {
      std::string bad = good;
      bad[at] ^= 0x40;
      LayerStreamDecoder decoder(basis, files);
      int fd = ::open(path("out.tar").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      UniqueFd out(fd);
      MemorySource in(bad);
      auto result = decoder.decode(in, out.get(), "damaged layer");
      if (result) {
        EXPECT_EQ(result->digest, target.index.diff_id)
            << "flip at " << at << " gave a different layer";
      } else {
        ++rejected;
      }
    }
    return rejected;
  }

  std::optional<TempDir> temp_;
  LayerStreamStats stats_;
  std::string last_stream_;
};

TEST_F(LayerStreamTest, MtimeOnlyRebuildCostsAFewBytesPerFile) {
  fs::path tree = path("tree");
  for (int i = 0; i < 2000; ++i)
    write_file(tree / "src" / ("file" + std::to_string(i) + ".js"), "content " + std::to_string(i));
  ASSERT_EQ(0, run_shell("find " + tree.string() + " -exec touch -h -d @1600000000 {} +"));
  tar(tree, path("old.tar"));
  ASSERT_EQ(0, run_shell("find " + tree.string() + " -exec touch -h -d @1700000000 {} +"));
  tar(tree, path("new.tar"));
  for (Effort effort : {Effort::kFast, Effort::kDefault, Effort::kMax}) {
    uint64_t bytes = round_trip(path("old.tar"), path("new.tar"), effort);
    EXPECT_GE(stats_.headers_coded, stats_.entries - 1);  // all but the root "./"
    std::cout << "mtime-only rebuild of 2000 files, effort " << effort_name(effort) << ": " << bytes
              << " bytes\n";
    EXPECT_EQ(stats_.same_as_basis, 2000u);
    // A few bytes per file at most; zstd usually does much better.
    EXPECT_LT(bytes, 2002u * 3) << "effort " << effort_name(effort);
  }
}

TEST_F(LayerStreamTest, EditsAndInsertionsInLargeFilesBecomeSmallDeltas) {
  fs::path old_tree = path("old"), new_tree = path("new");
  std::string data = random_bytes(6 << 20, 1);
  write_file(old_tree / "data.bin", data);
  write_file(old_tree / "renamed-1.0" / "lib.so", random_bytes(1 << 20, 2));
  write_file(old_tree / "dup-source.bin", random_bytes(300000, 3));
  std::string edited = data;
  for (size_t off : {size_t{100}, size_t{2} << 20, size_t{5} << 20})
    edited.replace(off, 8, "EDITED!!");
  edited.insert(size_t{3} << 20, random_bytes(4096, 4));  // an insertion shifts the rest
  write_file(new_tree / "data.bin", edited);
  std::string lib = random_bytes(1 << 20, 2);
  lib.replace(5000, 10, "0123456789");
  write_file(new_tree / "renamed-2.0" / "lib.so", lib);          // same name, bumped folder
  write_file(new_tree / "copy.bin", random_bytes(300000, 3));    // same content as a base file
  write_file(new_tree / "twice-a.bin", random_bytes(50000, 9));  // new content, twice
  write_file(new_tree / "twice-b.bin", random_bytes(50000, 9));
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  for (Effort effort : {Effort::kDefault, Effort::kMax}) {
    uint64_t bytes = round_trip(path("old.tar"), path("new.tar"), effort);
    EXPECT_EQ(stats_.delta_files, 2u);
    EXPECT_EQ(stats_.same_as_earlier, 1u);
    // One new 50 KB random file must travel; the rest is a few KiB at most.
    EXPECT_LT(bytes, 50000u + 16 * 1024) << "effort " << effort_name(effort);
  }
}

TEST_F(LayerStreamTest, NoBasisStillRoundTrips) {
  fs::path tree = path("tree");
  write_file(tree / "a.txt", "alpha");
  write_file(tree / "big.bin", random_bytes(1 << 20, 5));
  tar(tree, path("new.tar"));
  fs::path empty_dir = path("empty");
  fs::create_directories(empty_dir);
  tar(empty_dir, path("empty.tar"));
  round_trip(path("empty.tar"), path("new.tar"), Effort::kDefault);
  EXPECT_EQ(stats_.literal_files, 2u);
}

TEST_F(LayerStreamTest, DamagedStreamsAreRefused) {
  fs::path old_tree = path("old"), new_tree = path("new");
  write_file(old_tree / "x.bin", random_bytes(200000, 1));
  std::string x = random_bytes(200000, 1);
  x[1000] ^= 1;
  write_file(new_tree / "x.bin", x);
  write_file(new_tree / "y.txt", "new file");
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  round_trip(path("old.tar"), path("new.tar"), Effort::kDefault);
  EXPECT_GT(rejected_flips(last_stream_, 40), 10);
}

TEST_F(LayerStreamTest, DeltaGroupsPayAChangeRepeatedAcrossFilesOnce) {
  // A package bump: 40 source files each get the same new 3000-byte block of
  // text (think a changed helper inlined into every bundle). Coded file by
  // file, each zstd frame entropy-codes the block its own way, so not even
  // the outer stream sees the repeat.
  fs::path old_tree = path("old"), new_tree = path("new");
  const std::string block = testing::random_text(3000, 77);
  for (int i = 0; i < 40; ++i) {
    std::string text = testing::random_text(6000, i);
    write_file(old_tree / "pkg" / ("f" + std::to_string(i) + ".js"), text);
    write_file(new_tree / "pkg" / ("f" + std::to_string(i) + ".js"), text.insert(3000, block));
  }
  // New files without a basis after the group, so that segments end.
  for (int i = 0; i < 30; ++i)
    write_file(new_tree / "zz" / ("n" + std::to_string(i) + ".bin"), random_bytes(300, 100 + i));
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  const uint64_t fresh = 30 * 300;
  uint64_t fast = round_trip(path("old.tar"), path("new.tar"), Effort::kFast);
  EXPECT_EQ(stats_.delta_files, 40u);
  EXPECT_GT(fast, fresh + 40 * 500) << "file by file, every file pays for the block";
  for (Effort effort : {Effort::kDefault, Effort::kMax}) {
    uint64_t bytes = round_trip(path("old.tar"), path("new.tar"), effort);
    std::cout << "40 files with the same new block, effort " << effort_name(effort) << ": " << bytes
              << " bytes (file by file: " << fast << ")\n";
    EXPECT_EQ(stats_.delta_files, 40u);
    EXPECT_LT(bytes, fresh + 4000) << "effort " << effort_name(effort);
  }
  EXPECT_GT(rejected_flips(last_stream_, 60), 15);

  // In segments (the network's local mode), a group never straddles two.
  IndexedTar base = index_tar(path("old.tar"));
  IndexedTar target = index_tar(path("new.tar"));
  std::vector<const LayerIndex*> layers{&base.index};
  Basis basis = Basis::build(layers);
  LayerFiles files{{base.fd.get()}};
  struct Collect final : SegmentSink {
    Result<ByteSink*> begin_segment(uint64_t) override {
      sink.data().clear();
      return &sink;
    }
    Status end_segment(uint64_t, bool) override {
      segments.push_back(sink.data());
      return ok_status();
    }
    StringSink sink;
    std::vector<std::string> segments;
  } collected;
  LayerStreamEncoder encoder(basis, files, EncoderOptions{Effort::kDefault, 2});
  LayerStreamStats stats;
  ASSERT_TRUE(encoder.encode_segments(target.index, target.fd.get(), 0, 4096, collected, stats));
  EXPECT_GE(collected.segments.size(), 3u);
  LayerStreamDecoder decoder(basis, files);
  UniqueFd out_fd(
      ::open(path("rebuilt.tar").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  auto writer = RebuiltLayerWriter::open(out_fd.get(), 0, uint64_t{1} << 40);
  ASSERT_TRUE(writer);
  uint64_t entries = 0;
  for (const std::string& segment : collected.segments) {
    MemorySource in(segment);
    auto decoded = decoder.decode_segment(in, **writer, entries, "layer");
    ASSERT_TRUE(decoded) << decoded.error().message();
    entries += decoded->entries;
  }
  ASSERT_TRUE((*writer)->flush());
  EXPECT_EQ((*writer)->digest(), target.index.diff_id);
}

TEST(AnchoredDeltaTest, InsertionDeletionAndEditsRoundTripSmall) {
  std::string basis = random_bytes(8 << 20, 11);
  std::string fresh = basis;
  fresh.erase(size_t{1} << 20, 3000);                      // deletion
  fresh.insert(size_t{4} << 20, random_bytes(10000, 12));  // insertion
  fresh[size_t{6} << 20] ^= 1;                             // edit
  MemoryRandomAccess b(basis), n(fresh);
  StringSink delta;
  ASSERT_TRUE(anchored_delta_encode(b, n, AnchoredDeltaParams{}, delta));
  EXPECT_LT(delta.data().size(), 10000u + 8192u);
  MemorySource in(delta.data());
  StringSink out;
  ASSERT_TRUE(anchored_delta_decode(b, in, out, fresh.size()));
  EXPECT_EQ(out.data(), fresh);
  // Refuses to write more than allowed, and a basis too short for its copies.
  MemorySource again(delta.data());
  CountingSink sink;
  EXPECT_FALSE(anchored_delta_decode(b, again, sink, fresh.size() - 1));
  MemoryRandomAccess short_basis(std::string_view(basis).substr(0, 1 << 20));
  MemorySource third(delta.data());
  auto status = anchored_delta_decode(short_basis, third, sink, fresh.size());
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find("outside"), std::string::npos)
      << status.error().message();
}

}  // namespace
}  // namespace deltasync

namespace deltasync {
namespace {

// The network case: the sender holds no basis bytes, only the site's index
// (sent with 12-byte digests) and librsync signatures of the basis files its
// deltas need; the stream goes out in small segments, and the transfer is cut
// after a few of them and resumed by a new encoder and decoder (as a new
// session would), which must still rebuild the exact layer.
TEST_F(LayerStreamTest, RemoteSegmentedStreamResumesAfterACut) {
  fs::path old_tree = path("old"), new_tree = path("new");
  std::string data = random_bytes(3 << 20, 11);
  write_file(old_tree / "data.bin", data);
  for (int i = 0; i < 200; ++i)
    write_file(old_tree / "src" / ("f" + std::to_string(i) + ".js"), testing::random_text(3000, i));
  fs::copy(old_tree, new_tree, fs::copy_options::recursive);
  data.replace(1 << 20, 8, "EDITED!!");
  write_file(new_tree / "data.bin", data);
  for (int i = 0; i < 200; i += 4)
    write_file(new_tree / "src" / ("f" + std::to_string(i) + ".js"),
               testing::random_text(3000, 1000 + i));
  write_file(new_tree / "fresh.bin", random_bytes(2 << 20, 12));
  write_file(new_tree / "fresh-again.bin", random_bytes(2 << 20, 12));  // same as earlier
  tar(old_tree, path("old.tar"));
  tar(new_tree, path("new.tar"));
  IndexedTar base = index_tar(path("old.tar"));
  IndexedTar target = index_tar(path("new.tar"));

  // The site's index crosses the wire with 12-byte digests.
  auto wire_index = encode_layer_index(base.index, 12);
  ASSERT_TRUE(wire_index);
  auto received = decode_layer_index(*wire_index, "received index");
  ASSERT_TRUE(received) << received.error().message();
  EXPECT_EQ(received->entries.size(), base.index.entries.size());
  std::vector<const LayerIndex*> sender_layers{&*received};
  Basis sender_basis = Basis::build(sender_layers, 32 << 20, 12);
  std::vector<const LayerIndex*> site_layers{&base.index};
  Basis site_basis = Basis::build(site_layers, 32 << 20, 12);
  LayerFiles site_files{{base.fd.get()}};
  LayerFiles no_files;

  struct Signatures final : BasisSignatures {
    const std::vector<SignatureRound>* find(uint32_t id) const override {
      auto it = map.find(id);
      return it == map.end() ? nullptr : &it->second;
    }
    std::map<uint32_t, std::vector<SignatureRound>> map;
  } signatures;
  // The rounds the sender and the site go through (as deltasend does).
  auto sign = [&](const std::vector<DeltaCandidate>& candidates) {
    for (const auto& c : candidates) {
      const BasisContent& content = site_basis.contents()[c.content_id];
      ASSERT_EQ(c.basis_size, content.size);
      FileRangeRandomAccess basis_file(base.fd.get(), content.payload_offset, content.size);
      FileRangeRandomAccess new_file(target.fd.get(), c.target_offset, c.target_size);
      RoundsDelta rounds(new_file, c.basis_size);
      std::optional<SignatureAsk> ask = first_signature_ask(c.basis_size, c.target_size);
      while (ask) {
        auto sig = signature_of_ask(basis_file, *ask);
        ASSERT_TRUE(sig);
        signatures.map[c.content_id].push_back(SignatureRound{*ask, *sig});
        ASSERT_TRUE(rounds.add_round(signatures.map[c.content_id].back()));
        ask = rounds.next_ask();
      }
      // data.bin (3 MiB, 8 bytes edited) is refined beyond its coarse round.
      if (c.basis_size == 3u << 20) {
        EXPECT_GE(signatures.map[c.content_id].size(), 2u);
      }
    }
  };

  // Segments are collected as separate strings, as separate frames would be.
  struct Collect final : SegmentSink {
    Result<ByteSink*> begin_segment(uint64_t first) override {
      firsts.push_back(first);
      segments.emplace_back();
      sink.data().clear();
      return &sink;
    }
    Status end_segment(uint64_t next, bool done) override {
      segments.back() = sink.data();
      nexts.push_back(next);
      dones.push_back(done);
      return ok_status();
    }
    StringSink sink;
    std::vector<std::string> segments;
    std::vector<uint64_t> firsts, nexts;
    std::vector<bool> dones;
  };

  fs::path out = path("rebuilt.tar");
  UniqueFd out_fd(::open(out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  uint64_t kept_entries = 0, kept_bytes = 0;
  {
    LayerStreamEncoder encoder(sender_basis, no_files,
                               EncoderOptions{Effort::kDefault, 2, &signatures});
    sign(encoder.delta_candidates(target.index, 0));
    Collect collected;
    LayerStreamStats stats;
    ASSERT_TRUE(
        encoder.encode_segments(target.index, target.fd.get(), 0, 16 * 1024, collected, stats));
    EXPECT_EQ(stats.delta_files, 1u);  // data.bin, an rsync delta against the site's signature
    EXPECT_EQ(stats.same_as_earlier, 1u);
    ASSERT_GE(collected.segments.size(), 4u);
    // The site decodes two segments, syncs, and the connection is cut.
    LayerStreamDecoder decoder(site_basis, site_files);
    auto writer = RebuiltLayerWriter::open(out_fd.get(), 0, uint64_t{1} << 40);
    ASSERT_TRUE(writer);
    for (int i = 0; i < 2; ++i) {
      MemorySource in(collected.segments[i]);
      auto segment = decoder.decode_segment(in, **writer, collected.firsts[i], "layer");
      ASSERT_TRUE(segment) << segment.error().message();
      EXPECT_FALSE(segment->layer_done);
      kept_entries += segment->entries;
      EXPECT_EQ(kept_entries, collected.nexts[i]);
    }
    ASSERT_TRUE((*writer)->sync());
    kept_bytes = (*writer)->offset();
  }
  // A new session: both ends start over from the checkpoint.
  LayerStreamEncoder encoder(sender_basis, no_files,
                             EncoderOptions{Effort::kDefault, 2, &signatures});
  encoder.skip_entries(target.index, 0, kept_entries);
  signatures.map.clear();
  sign(encoder.delta_candidates(target.index, kept_entries));
  Collect rest;
  LayerStreamStats stats;
  ASSERT_TRUE(
      encoder.encode_segments(target.index, target.fd.get(), kept_entries, 16 * 1024, rest, stats));
  LayerStreamDecoder decoder(site_basis, site_files);
  FileSource prefix(out_fd.get(), 0, kept_bytes, "partial");
  auto partial_index = build_layer_index(prefix, Digest(), "partial");
  ASSERT_TRUE(partial_index) << partial_index.error().message();
  ASSERT_EQ(partial_index->entries.size(), kept_entries);
  decoder.register_entries(*partial_index, out_fd.get(), 0, kept_entries);
  auto writer = RebuiltLayerWriter::open(out_fd.get(), kept_bytes, uint64_t{1} << 40);
  ASSERT_TRUE(writer);
  uint64_t entries = kept_entries;
  bool done = false;
  for (size_t i = 0; i < rest.segments.size(); ++i) {
    MemorySource in(rest.segments[i]);
    auto segment = decoder.decode_segment(in, **writer, entries, "layer");
    ASSERT_TRUE(segment) << segment.error().message();
    entries += segment->entries;
    done = segment->layer_done;
  }
  EXPECT_TRUE(done);
  ASSERT_TRUE((*writer)->flush());
  EXPECT_EQ((*writer)->digest(), target.index.diff_id);
  EXPECT_EQ((*writer)->offset(), fs::file_size(path("new.tar")));
}

TEST(LayerIndexCodecTest, RoundTripsAndRefusesDamage) {
  auto dir = TempDir::create(default_temp_parent(), "index-codec-test-");
  ASSERT_TRUE(dir);
  fs::path tree = dir->path() / "t";
  write_file(tree / "a" / "b.txt", "hello");
  write_file(tree / std::string(150, 'x') / "long-name.bin", random_bytes(70000, 1));
  write_file(tree / "empty", "");
  ASSERT_EQ(0, run_shell("ln -s a/b.txt " + (tree / "link").string() + " && ln " +
                         (tree / "a" / "b.txt").string() + " " + (tree / "hard").string()));
  fs::path tar_file = dir->path() / "t.tar";
  ASSERT_EQ(
      0, run_shell("tar --format=posix -cf " + tar_file.string() + " -C " + tree.string() + " ."));
  IndexedTar indexed = index_tar(tar_file);
  auto bytes = encode_layer_index(indexed.index, 32);
  ASSERT_TRUE(bytes);
  auto decoded = decode_layer_index(*bytes, "index");
  ASSERT_TRUE(decoded) << decoded.error().message();
  ASSERT_EQ(decoded->entries.size(), indexed.index.entries.size());
  EXPECT_EQ(decoded->diff_id, indexed.index.diff_id);
  EXPECT_EQ(decoded->tar_size, indexed.index.tar_size);
  for (size_t i = 0; i < decoded->entries.size(); ++i) {
    const auto& a = decoded->entries[i];
    const auto& b = indexed.index.entries[i];
    EXPECT_EQ(a.path, b.path);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.digest, b.digest) << a.path;
    EXPECT_EQ(a.payload_offset, b.payload_offset) << a.path;
    EXPECT_EQ(a.link_target, b.link_target);
    EXPECT_EQ(a.raw_metadata, b.raw_metadata);
  }
  // Damage: a flipped byte inside the compressed index, and a truncation.
  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  EXPECT_FALSE(decode_layer_index(flipped, "index"));
  EXPECT_FALSE(decode_layer_index(std::string_view(*bytes).substr(0, bytes->size() - 7), "index"));
}

}  // namespace
}  // namespace deltasync
