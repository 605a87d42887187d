// Split + reassemble must reproduce every archive byte for byte. The
// archives here are made by GNU tar in each of its formats from a tree with
// what real layers hold (long and unicode names, links, xattrs, whiteouts,
// empty files), plus a generated > 8 GiB entry streamed through pipes.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/io/file.h"
#include "common/tar/tar_entry.h"
#include "common/tar/tar_metadata.h"
#include "common/tar/tar_split.h"
#include "tests/support/tar_roundtrip.h"
#include "tests/support/test_files.h"

namespace deltasync {
namespace {

namespace fs = std::filesystem;
using testing::random_bytes;
using testing::round_trip_tar_file;
using testing::run_shell;
using testing::write_file;

class TarSplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "tar-split-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    temp_.emplace(std::move(*dir));
    root_ = temp_->path() / "tree";
  }

  // A tree with what real layers contain. `posix_only` adds what ustar cannot hold.
  void make_tree(bool long_names) {
    for (int i = 0; i < 300; ++i)
      write_file(root_ / "many" / ("f" + std::to_string(i)), "small " + std::to_string(i));
    write_file(root_ / "big.bin", random_bytes(3 * 1024 * 1024 + 17, 1));
    write_file(root_ / "empty", "");
    write_file(root_ / "app" / ".wh.removed", "");
    write_file(root_ / "app" / "sub" / ".wh..wh..opq", "");
    write_file(root_ / "unicode" / "данные-数据-😀.txt", "unicode content");
    fs::create_symlink("big.bin", root_ / "link-to-big");
    fs::create_symlink("/nonexistent/absolute/target", root_ / "dangling");
    fs::create_hard_link(root_ / "many" / "f1", root_ / "hardlink-to-f1");
    fs::create_directories(root_ / "emptydir");
    if (long_names) {
      std::string component(60, 'd');
      fs::path deep = root_;
      for (int i = 0; i < 5; ++i) deep /= component + std::to_string(i);  // > 255 bytes
      write_file(deep / "file-with-a-path-over-255-bytes.txt", "deep");
      write_file(root_ / (std::string(120, 'n') + ".txt"), "name over 100 bytes");
      fs::create_symlink(std::string(150, 't'), root_ / "long-symlink-target");
    }
    ASSERT_EQ(0, run_shell("python3 -c \"import os; os.setxattr('" + (root_ / "big.bin").string() +
                           "', 'user.deltasync.test', b'xattr-value')\""));
  }

  void expect_round_trip(const fs::path& tar) {
    auto rt = round_trip_tar_file(tar, temp_->path());
    ASSERT_TRUE(rt) << rt.error().message();
    EXPECT_EQ(rt->input_digest, rt->output_digest) << tar;
    EXPECT_EQ(rt->input_bytes, rt->output_bytes);
    EXPECT_EQ(rt->input_bytes, fs::file_size(tar));
    EXPECT_GT(rt->entries, 300u);
    EXPECT_GE(rt->payload_bytes, 3u * 1024 * 1024);
  }

  std::vector<TarEntry> list(const fs::path& tar) {
    auto source = open_file_source(tar);
    EXPECT_TRUE(source);
    TarEntryReader reader(**source, tar.string());
    std::vector<TarEntry> entries;
    while (true) {
      auto entry = reader.next();
      EXPECT_TRUE(entry) << entry.error().message();
      if (!entry || !*entry) break;
      entries.push_back(std::move(**entry));
    }
    return entries;
  }

  std::optional<TempDir> temp_;
  fs::path root_;
};

TEST_F(TarSplitTest, GnuFormatRoundTripsExactly) {
  make_tree(true);
  auto tar = temp_->path() / "gnu.tar";
  ASSERT_EQ(0, run_shell("tar --format=gnu -cf " + tar.string() + " -C " + root_.string() + " ."));
  expect_round_trip(tar);
}

TEST_F(TarSplitTest, PosixFormatWithXattrsRoundTripsExactly) {
  make_tree(true);
  auto tar = temp_->path() / "posix.tar";
  ASSERT_EQ(0, run_shell("tar --format=posix --xattrs --xattrs-include='*' -cf " + tar.string() +
                         " -C " + root_.string() + " ."));
  expect_round_trip(tar);
  auto entries = list(tar);
  bool saw_xattr = false, saw_deep = false, saw_unicode = false, saw_hardlink = false;
  for (const auto& e : entries) {
    if (e.normalized_path() == "big.bin") {
      saw_xattr = e.xattrs.count("user.deltasync.test") &&
                  e.xattrs.at("user.deltasync.test") == "xattr-value";
      EXPECT_EQ(e.size, 3u * 1024 * 1024 + 17);
    }
    if (e.normalized_path().ends_with("file-with-a-path-over-255-bytes.txt")) {
      saw_deep = e.normalized_path().size() > 255;
    }
    if (e.normalized_path() == "unicode/данные-数据-😀.txt") saw_unicode = true;
    if (e.is_hardlink()) saw_hardlink = true;
    if (e.normalized_path() == "long-symlink-target") {
      EXPECT_EQ(e.link_target, std::string(150, 't'));
    }
  }
  EXPECT_TRUE(saw_xattr);
  EXPECT_TRUE(saw_deep);
  EXPECT_TRUE(saw_unicode);
  EXPECT_TRUE(saw_hardlink);
}

TEST_F(TarSplitTest, UstarFormatRoundTripsExactly) {
  make_tree(false);
  auto tar = temp_->path() / "ustar.tar";
  ASSERT_EQ(0,
            run_shell("tar --format=ustar -cf " + tar.string() + " -C " + root_.string() + " ."));
  expect_round_trip(tar);
}

TEST_F(TarSplitTest, RecordPaddingAndExtraTrailingBytesRoundTrip) {
  make_tree(true);
  for (const char* blocking : {"1", "20", "64"}) {
    auto tar = temp_->path() / (std::string("b") + blocking + ".tar");
    ASSERT_EQ(0, run_shell(std::string("tar --format=gnu -b ") + blocking + " -cf " + tar.string() +
                           " -C " + root_.string() + " ."));
    expect_round_trip(tar);
  }
  // Extra zero blocks and non-zero garbage after the end-of-archive marker.
  auto tar = temp_->path() / "b1.tar";
  ASSERT_EQ(0, run_shell("head -c 4096 /dev/zero >> " + tar.string() +
                         " && printf 'trailing junk' >> " + tar.string()));
  expect_round_trip(tar);
}

TEST_F(TarSplitTest, ArchiveWithoutEndMarkerRoundTrips) {
  make_tree(false);
  auto tar = temp_->path() / "noend.tar";
  ASSERT_EQ(0, run_shell("tar --format=gnu -b 1 -cf " + tar.string() + " -C " + root_.string() +
                         " . && truncate -s -1024 " + tar.string()));
  expect_round_trip(tar);
}

// Sparse files in every form GNU tar writes: old GNU ('S' with sparse-map
// extension blocks once there are more than 4 regions), and PAX sparse 0.0,
// 0.1 and 1.0. Each round-trips, and the entry after the sparse one is found
// where it is (a walk that took the sparse map for payload would lose it).
TEST_F(TarSplitTest, SparseFilesInEveryGnuFormatRoundTripAndStayInStep) {
  fs::create_directories(root_);
  ASSERT_EQ(0, run_shell("truncate -s 50M " + (root_ / "sparse.img").string()));
  for (int i = 1; i <= 30; ++i) {
    ASSERT_EQ(0, run_shell("printf x" + std::to_string(i) +
                           " | dd of=" + (root_ / "sparse.img").string() + " bs=1 seek=" +
                           std::to_string(i * 1500000) + " conv=notrunc status=none"));
  }
  write_file(root_ / "zz-after.txt", "after the sparse file\n");
  for (const std::string& format :
       {std::string("--format=gnu"), std::string("--format=posix --sparse-version=0.0"),
        std::string("--format=posix --sparse-version=0.1"),
        std::string("--format=posix --sparse-version=1.0")}) {
    SCOPED_TRACE(format);
    auto tar = temp_->path() / "sparse.tar";
    fs::remove(tar);
    ASSERT_EQ(0, run_shell("tar " + format + " -S -cf " + tar.string() + " -C " + root_.string() +
                           " ./sparse.img ./zz-after.txt"));
    auto rt = round_trip_tar_file(tar, temp_->path());
    ASSERT_TRUE(rt) << rt.error().message();
    EXPECT_EQ(rt->input_digest, rt->output_digest);
    auto entries = list(tar);
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.normalized_path());
    // PAX 0.0/0.1 name the entry by its real path in the PAX header; 1.0
    // keeps GNUSparseFile.0/ in the ustar name.
    ASSERT_FALSE(names.empty());
    EXPECT_EQ(names.back(), "zz-after.txt");
    EXPECT_EQ(entries.back().size, 22u);
  }
}

// PAX numbers as other readers take them: blanks and a '+' around a number,
// an empty value (POSIX: the record is void, the header's field stands),
// a negative uid as Go's archive/tar writes for ids it cannot map. The bytes
// stay as they are; only a size that is no number is refused, naming it.
TEST_F(TarSplitTest, PaxNumbersOtherReadersAcceptAreAccepted) {
  std::string archive;
  TarHeaderSpec odd;
  odd.path = "odd-numbers.txt";
  odd.size = 5;
  odd.uid = 33;
  odd.pax = {{"size", " +5 "}, {"uid", "-1"}, {"gid", " 12"}, {"mtime", ""}};
  archive += build_tar_header(odd) + "hello" + std::string(tar_padding(5), '\0');
  TarHeaderSpec plain;
  plain.path = "next.txt";
  plain.size = 3;
  archive += build_tar_header(plain) + "abc" + std::string(tar_padding(3), '\0');
  archive += std::string(2 * kTarBlock, '\0');
  auto tar = temp_->path() / "pax-numbers.tar";
  write_file(tar, archive);
  auto rt = round_trip_tar_file(tar, temp_->path());
  ASSERT_TRUE(rt) << rt.error().message();
  EXPECT_EQ(rt->input_digest, rt->output_digest);
  auto entries = list(tar);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].size, 5u);
  EXPECT_EQ(entries[0].uid, 33u);  // -1: the header's value stands
  EXPECT_EQ(entries[0].gid, 12u);
  EXPECT_EQ(entries[1].normalized_path(), "next.txt");

  TarHeaderSpec bad = odd;
  bad.pax = {{"size", "five"}};
  write_file(tar, build_tar_header(bad) + "hello" + std::string(tar_padding(5), '\0') +
                      std::string(2 * kTarBlock, '\0'));
  auto refused = round_trip_tar_file(tar, temp_->path());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("PAX size 'five' is not a number"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("tar entry 0"), std::string::npos);
}

// Archives from every writer a layer may come from, in each of its formats:
// GNU tar (gnu, oldgnu, v7, ustar, posix), bsdtar (libarchive: pax, ustar,
// gnutar, v7, and its default "restricted pax"), Python's tarfile (ustar,
// gnu, pax, pax with a global header). Each must round-trip byte for byte,
// and the walk must see as many entries as Python's own reader (so it kept
// step through every extension). Formats that cannot hold long names or
// xattrs get the tree without them. Docker's own writer (Go's archive/tar)
// is covered by the e2e suites on `docker save` output.
TEST_F(TarSplitTest, ArchivesFromEveryWriterRoundTrip) {
  if (run_shell("command -v bsdtar >/dev/null") != 0) GTEST_SKIP() << "bsdtar missing";
  struct Writer {
    std::string name;
    bool long_names;
    std::string command;  // {OUT} and {DIR}
  };
  const std::vector<Writer> writers{
      {"gnu tar --format=gnu", true, "tar --format=gnu -cf {OUT} -C {DIR} ."},
      {"gnu tar --format=oldgnu", true, "tar --format=oldgnu -cf {OUT} -C {DIR} ."},
      {"gnu tar --format=v7", false, "tar --format=v7 -cf {OUT} -C {DIR} ."},
      {"gnu tar --format=ustar", false, "tar --format=ustar -cf {OUT} -C {DIR} ."},
      {"gnu tar --format=posix --xattrs", true, "tar --format=posix --xattrs -cf {OUT} -C {DIR} ."},
      {"bsdtar (restricted pax)", true, "bsdtar -cf {OUT} -C {DIR} ."},
      {"bsdtar --format=pax", true, "bsdtar --format=pax -cf {OUT} -C {DIR} ."},
      {"bsdtar --format=ustar", false, "bsdtar --format=ustar -cf {OUT} -C {DIR} ."},
      {"bsdtar --format=gnutar", true, "bsdtar --format=gnutar -cf {OUT} -C {DIR} ."},
      {"bsdtar --format=v7", false, "bsdtar --format=v7 -cf {OUT} -C {DIR} ."},
      {"python tarfile USTAR", false,
       "python3 -c \"import tarfile,sys; "
       "t=tarfile.open(sys.argv[1],'w',format=tarfile.USTAR_FORMAT);"
       " t.add(sys.argv[2],arcname='.'); t.close()\" {OUT} {DIR}"},
      {"python tarfile GNU", true,
       "python3 -c \"import tarfile,sys; t=tarfile.open(sys.argv[1],'w',format=tarfile.GNU_FORMAT);"
       " t.add(sys.argv[2],arcname='.'); t.close()\" {OUT} {DIR}"},
      {"python tarfile PAX + global header", true,
       "python3 -c \"import tarfile,sys; t=tarfile.open(sys.argv[1],'w',format=tarfile.PAX_FORMAT,"
       " pax_headers={'comment':'made by python'}); t.add(sys.argv[2],arcname='.'); t.close()\""
       " {OUT} {DIR}"},
  };
  fs::path short_root = temp_->path() / "short-tree";
  make_tree(false);
  fs::rename(root_, short_root);
  make_tree(true);
  for (const auto& w : writers) {
    SCOPED_TRACE(w.name);
    auto tar = temp_->path() / "any.tar";
    fs::remove(tar);
    std::string command = w.command;
    command.replace(command.find("{OUT}"), 5, tar.string());
    command.replace(command.find("{DIR}"), 5, (w.long_names ? root_ : short_root).string());
    ASSERT_EQ(0, run_shell(command + " 2>/dev/null")) << command;
    expect_round_trip(tar);
    std::string count_file = (temp_->path() / "count").string();
    ASSERT_EQ(0, run_shell("python3 -c \"import tarfile,sys; print(len(tarfile.open(sys.argv[1])"
                           ".getmembers()))\" " +
                           tar.string() + " > " + count_file));
    size_t python_count = std::stoul(read_small_file(count_file, 100).value());
    EXPECT_EQ(list(tar).size(), python_count);
  }
}

TEST_F(TarSplitTest, BadHeaderChecksumIsAClearError) {
  make_tree(false);
  auto tar = temp_->path() / "bad.tar";
  ASSERT_EQ(0, run_shell("tar --format=gnu -cf " + tar.string() + " -C " + root_.string() + " ."));
  // Flip a byte in the name field of the first header.
  {
    std::fstream f(tar, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('#');
  }
  auto rt = round_trip_tar_file(tar, temp_->path());
  ASSERT_FALSE(rt);
  EXPECT_EQ(rt.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(rt.error().message().find("bad header checksum"), std::string::npos)
      << rt.error().message();
  EXPECT_NE(rt.error().message().find("offset 0"), std::string::npos) << rt.error().message();
}

TEST_F(TarSplitTest, TruncatedArchiveIsAClearError) {
  make_tree(false);
  auto tar = temp_->path() / "cut.tar";
  ASSERT_EQ(0, run_shell("tar --format=gnu -cf " + tar.string() + " -C " + root_.string() + " ."));
  auto entries = list(tar);
  const TarEntry* big = nullptr;
  for (const auto& e : entries)
    if (e.normalized_path() == "big.bin") big = &e;
  ASSERT_NE(big, nullptr);
  // Cut in the middle of big.bin's content, then in the middle of a header.
  for (uint64_t cut : {big->offset + big->raw_metadata.size() + 1000, big->offset + 100}) {
    fs::resize_file(tar, cut);
    auto rt = round_trip_tar_file(tar, temp_->path());
    ASSERT_FALSE(rt);
    EXPECT_EQ(rt.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(rt.error().message().find("truncated"), std::string::npos) << rt.error().message();
  }
}

TEST_F(TarSplitTest, NotATarIsAClearError) {
  auto junk = temp_->path() / "junk";
  write_file(junk, random_bytes(10000, 7));
  auto rt = round_trip_tar_file(junk, temp_->path());
  ASSERT_FALSE(rt);
  EXPECT_EQ(rt.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(rt.error().message().find("not a tar file"), std::string::npos) << rt.error().message();
}

TEST_F(TarSplitTest, CorruptMetadataStreamIsRejected) {
  make_tree(false);
  auto tar = temp_->path() / "x.tar";
  ASSERT_EQ(0, run_shell("tar --format=gnu -cf " + tar.string() + " -C " + root_.string() + " ."));
  auto source = open_file_source(tar);
  ASSERT_TRUE(source);
  StringSink metadata, payloads;
  TarMetadataWriter writer(metadata, &payloads);
  ASSERT_TRUE(split_tar(**source, writer, "x.tar"));
  ASSERT_TRUE(writer.finish());
  for (size_t cut : {size_t{0}, metadata.data().size() / 2, metadata.data().size() - 1}) {
    MemorySource meta(std::string_view(metadata.data()).substr(0, cut));
    MemorySource pay(payloads.data());
    StreamPayloadProvider provider(pay);
    CountingSink out;
    auto status = reassemble_tar(meta, provider, out);
    ASSERT_FALSE(status) << "cut at " << cut;
    EXPECT_EQ(status.error().code(), ErrorCode::kCorrupt);
  }
  // A payload stream that ends early.
  MemorySource meta(metadata.data());
  MemorySource pay(std::string_view(payloads.data()).substr(0, payloads.data().size() / 2));
  StreamPayloadProvider provider(pay);
  CountingSink out;
  auto status = reassemble_tar(meta, provider, out);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find("truncated"), std::string::npos)
      << status.error().message();
}

// Generates a tar holding one entry of `size` bytes (pattern content), with
// the size in a PAX record or in base-256, without storing it anywhere.
class HugeTarSource final : public ByteSource {
 public:
  HugeTarSource(uint64_t size, bool base256) : size_(size) {
    TarHeaderSpec spec;
    spec.path = "huge.bin";
    spec.size = base256 ? 0 : size;
    spec.mtime = 1700000000;
    head_ = build_tar_header(spec);
    if (base256) {
      // Rewrite the last header block's size field as base-256 and fix its checksum.
      char* block = head_.data() + head_.size() - kTarBlock;
      std::memset(block + 124, 0, 12);
      block[124] = static_cast<char>(0x80);
      for (int i = 0; i < 8; ++i) block[135 - i] = static_cast<char>((size >> (8 * i)) & 0xff);
      std::memset(block + 148, ' ', 8);
      unsigned sum = 0;
      for (size_t i = 0; i < kTarBlock; ++i) sum += static_cast<uint8_t>(block[i]);
      std::snprintf(block + 148, 8, "%06o", sum);
      block[155] = ' ';
    }
    tail_ = std::string(tar_padding(size) + 2 * kTarBlock, '\0');
  }
  Result<size_t> read(std::span<char> buffer) override {
    size_t n = 0;
    while (n < buffer.size()) {
      if (pos_ < head_.size()) {
        size_t k = std::min(buffer.size() - n, head_.size() - pos_);
        std::memcpy(buffer.data() + n, head_.data() + pos_, k);
        pos_ += k, n += k;
      } else if (pos_ < head_.size() + size_) {
        uint64_t data_pos = pos_ - head_.size();
        size_t k = std::min<uint64_t>(buffer.size() - n, head_.size() + size_ - pos_);
        for (size_t i = 0; i < k; ++i)
          buffer[n + i] = static_cast<char>(((data_pos + i) * 2654435761u) >> 13);
        pos_ += k, n += k;
      } else {
        uint64_t tail_pos = pos_ - head_.size() - size_;
        if (tail_pos >= tail_.size()) break;
        size_t k = std::min<uint64_t>(buffer.size() - n, tail_.size() - tail_pos);
        std::memcpy(buffer.data() + n, tail_.data() + tail_pos, k);
        pos_ += k, n += k;
      }
    }
    return n;
  }

 private:
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string head_, tail_;
};

Result<std::pair<Digest, Digest>> stream_through_pipes(ByteSource& input) {
  int meta_pipe[2], payload_pipe[2];
  if (::pipe2(meta_pipe, O_CLOEXEC) != 0 || ::pipe2(payload_pipe, O_CLOEXEC) != 0) {
    return std::unexpected(errno_error(errno, "pipe"));
  }
  HashingSource hashed(input);
  Status split_status;
  std::thread splitter([&] {
    FdSink meta{UniqueFd{meta_pipe[1]}, "metadata pipe"};
    FdSink payload{UniqueFd{payload_pipe[1]}, "payload pipe"};
    TarMetadataWriter writer(meta, &payload);
    split_status = split_tar(hashed, writer, "generated");
    if (split_status) split_status = writer.finish();
  });
  FileSource meta{UniqueFd{meta_pipe[0]}, "metadata pipe"};
  FileSource payload{UniqueFd{payload_pipe[0]}, "payload pipe"};
  StreamPayloadProvider provider(payload);
  HashingSink output;
  auto status = reassemble_tar(meta, provider, output);
  splitter.join();
  DS_RETURN_IF_ERROR(split_status);
  DS_RETURN_IF_ERROR(status);
  return std::make_pair(hashed.finish(), output.digest());
}

TEST(TarSplitHugeTest, EntryOver8GiBWithPaxSizeStreamsThrough) {
  const uint64_t size = (uint64_t{8} << 30) + 12345;
  HugeTarSource source(size, /*base256=*/false);
  auto digests = stream_through_pipes(source);
  ASSERT_TRUE(digests) << digests.error().message();
  EXPECT_EQ(digests->first, digests->second);
}

TEST(TarSplitHugeTest, Base256SizeIsParsed) {
  // Base-256 is how GNU tar writes sizes >= 8 GiB; the encoding is the same
  // for any size, so a smaller entry exercises the same parser path quickly.
  const uint64_t size = (uint64_t{64} << 20) + 7;
  HugeTarSource source(size, /*base256=*/true);
  TarEntryReader reader(source, "generated");
  auto entry = reader.next();
  ASSERT_TRUE(entry) << entry.error().message();
  ASSERT_TRUE(*entry);
  EXPECT_EQ((*entry)->size, size);
  HugeTarSource again(size, true);
  auto digests = stream_through_pipes(again);
  ASSERT_TRUE(digests) << digests.error().message();
  EXPECT_EQ(digests->first, digests->second);
}

}  // namespace
}  // namespace deltasync
