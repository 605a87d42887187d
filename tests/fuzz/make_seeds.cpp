// fuzz_make_seeds OUT_DIR: writes a seed corpus per fuzz target into
// OUT_DIR/<target>/, from real data: tars made by GNU tar (gnu, posix,
// ustar, oldgnu; long names, links, sparse files, big ids), and what our
// own writers produce from them: layer streams (the real encoder, every
// effort, network mode, segments), block deltas, bundles (BundleWriter),
// docker-archives (DockerArchiveWriter) and OCI archives, encoded indexes,
// session frames (WireChannel, DataFrameSink).
//
// Each seed starts with the selector bytes its target reads (see the
// target's file). Output is deterministic for a given GNU tar version.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <spdlog/spdlog.h>

#include "common/bundle/bundle_file.h"
#include "common/codec/compression.h"
#include "common/crypto/digest.h"
#include "common/delta/block_delta.h"
#include "common/image/image.h"
#include "common/index/index_codec.h"
#include "common/io/file.h"
#include "common/layerstream/layer_stream.h"
#include "common/protocol/distribution_codec.h"
#include "common/protocol/wire_channel.h"
#include "common/tar/tar_entry.h"
#include "common/util/varint.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {
namespace {

namespace fs = std::filesystem;
using namespace std::literals;

[[noreturn]] void die(const std::string& what) {
  std::cerr << "fuzz_make_seeds: " << what << "\n";
  std::exit(1);
}

template <class T>
T check(Result<T> result, const std::string& what) {
  if (!result) die(what + ": " + result.error().message());
  return std::move(*result);
}
void check(const Status& status, const std::string& what) {
  if (!status) die(what + ": " + status.error().message());
}

void shell(const std::string& command) {
  if (std::system(command.c_str()) != 0) die("command failed: " + command);
}

std::string read_file(const fs::path& path) {
  return check(read_small_file(path, 64 << 20), "read " + path.string());
}

void write_file(const fs::path& path, std::string_view data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) die("cannot write " + path.string());
}

std::string pseudo_random(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  for (char& c : out) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return out;
}

std::string text(size_t lines, int seed) {
  std::string out;
  for (size_t i = 0; i < lines; ++i) {
    out += "setting_" + std::to_string(i) + " = " + std::to_string((i * 31 + seed) % 977) + "\n";
  }
  return out;
}

class Seeds {
 public:
  explicit Seeds(fs::path root) : root_(std::move(root)) {}
  // Writes OUT/<target>/<name>, prefixed with `selector`.
  void add(std::string_view target, const std::string& name, std::string_view selector,
           std::string_view body) {
    std::string data(selector);
    data.append(body);
    write_file(root_ / target / name, data);
    ++counts_[std::string(target)];
  }
  const std::map<std::string, int>& counts() const { return counts_; }

 private:
  fs::path root_;
  std::map<std::string, int> counts_;
};

// GNU tar with fixed owners, times and order.
const std::string kTarOptions =
    "--sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00:00Z'";

// ---- tars -----------------------------------------------------------------------

void make_tree(const fs::path& dir, bool long_names) {
  fs::create_directories(dir / "etc");
  fs::create_directories(dir / "usr/bin");
  fs::create_directories(dir / "var/empty");
  write_file(dir / "etc/hosts", "127.0.0.1 localhost\n");
  write_file(dir / "etc/config.txt", text(30, 1));
  write_file(dir / "usr/bin/tool", pseudo_random(1500, 7));
  write_file(dir / "usr/bin/.wh.removed", "");
  write_file(dir / "etc/.wh..wh..opq", "");
  write_file(dir / "empty", "");
  fs::create_symlink("../etc/hosts", dir / "usr/hosts-link");
  fs::create_hard_link(dir / "etc/hosts", dir / "usr/bin/hosts-hard");
  ::chmod((dir / "usr/bin/tool").c_str(), 04755);
  if (long_names) {
    fs::path deep = dir / "opt" / std::string(90, 'd') / std::string(80, 'e');
    fs::create_directories(deep);
    write_file(deep / (std::string(60, 'f') + ".txt"), "long\n");
    fs::create_symlink(std::string(150, 'l'), dir / "opt/long-link");
  }
}

void tar_seeds(Seeds& seeds, const fs::path& work) {
  fs::path tree = work / "tree", short_tree = work / "tree-short";
  make_tree(tree, true);
  make_tree(short_tree, false);
  ::mkfifo((tree / "fifo").c_str(), 0644);
  // A sparse file: GNU format stores it as an 'S' entry with a sparse map.
  shell("truncate -s 20000 " + (tree / "sparse").string() + " && printf data >> " +
        (tree / "sparse").string());
  // Sub-second mtimes for PAX.
  shell("touch -d '2023-05-06 07:08:09.123456789Z' " + (tree / "etc/hosts").string());

  struct Variant {
    std::string name, options;
    const fs::path* dir;
  };
  std::vector<Variant> variants{
      {"gnu", "--format=gnu " + kTarOptions, &tree},
      {"gnu-sparse", "--format=gnu --sparse " + kTarOptions, &tree},
      {"oldgnu", "--format=oldgnu " + kTarOptions, &tree},
      {"posix", "--format=posix " + kTarOptions, &tree},
      {"posix-times", "--format=posix --sort=name", &tree},  // atime/ctime PAX records
      {"ustar", "--format=ustar " + kTarOptions, &short_tree},
      {"v7", "--format=v7 " + kTarOptions, &short_tree},
      {"gnu-tight", "--format=gnu --record-size=512 " + kTarOptions, &short_tree},
      // uid/gid beyond 8 octal digits: base-256 numbers (gnu), PAX records (posix).
      {"gnu-bigid",
       "--format=gnu --sort=name --owner=4000000000 --group=3000000000 "
       "--mtime='2024-01-01 00:00:00Z'",
       &short_tree},
      {"posix-bigid",
       "--format=posix --sort=name --owner=4000000000 --group=3000000000 "
       "--mtime='2024-01-01 00:00:00Z'",
       &short_tree},
  };
  for (const Variant& v : variants) {
    fs::path out = work / ("seed-" + v.name + ".tar");
    shell("tar " + v.options + " -C " + v.dir->string() + " -cf " + out.string() + " .");
    std::string tar = read_file(out);
    if (tar.size() > (64 << 10)) die("tar seed " + v.name + " is larger than 64 KiB");
    seeds.add("tar_split", v.name + ".tar", "", tar);
  }
  // Extra end-of-archive blocks and trailing bytes after them.
  std::string tar = read_file(work / "seed-gnu-tight.tar");
  seeds.add("tar_split", "extra-zero-blocks.tar", "", tar + std::string(4 * kTarBlock, '\0'));
  seeds.add("tar_split", "trailing-garbage.tar", "", tar + "not a tar block");
  // An archive of one entry written by our own header builder (PAX for a long path).
  TarHeaderSpec spec;
  spec.path = "a/" + std::string(120, 'p') + "/file";
  spec.size = 3;
  spec.pax["SCHILY.xattr.user.test"] = "value";
  std::string built =
      build_tar_header(spec) + "abc" + std::string(509, '\0') + std::string(2 * kTarBlock, '\0');
  seeds.add("tar_split", "built-pax-xattr.tar", "", built);
}

// ---- layer streams -------------------------------------------------------------

struct Layer {
  fs::path tar;
  UniqueFd fd;
  LayerIndex index;
};

Layer index_layer(const fs::path& tar) {
  auto source = check(open_file_source(tar), "open " + tar.string());
  HashingSource hashed(*source);
  LayerIndex index = check(build_layer_index(hashed, Digest(), tar.string()), "index");
  index.diff_id = hashed.finish();
  return Layer{tar, check(open_for_read(tar), "open"), std::move(index)};
}

// The signatures a receiver would send for every basis content.
class AllSignatures final : public BasisSignatures {
 public:
  explicit AllSignatures(const LayerBasis& basis) {
    for (uint32_t id = 0; id < basis.basis->contents().size(); ++id) {
      const BasisContent& c = basis.basis->contents()[id];
      FileRangeRandomAccess range(basis.files.fds[c.layer], c.payload_offset, c.size);
      SignatureAsk ask = first_signature_ask(c.size, c.size);
      signatures_[id].push_back(
          SignatureRound{ask, check(signature_of_ask(range, ask), "rsync signature")});
    }
  }
  const std::vector<SignatureRound>* find(uint32_t content_id) const override {
    auto it = signatures_.find(content_id);
    return it == signatures_.end() ? nullptr : &it->second;
  }

 private:
  std::map<uint32_t, std::vector<SignatureRound>> signatures_;
};

class CollectSegments final : public SegmentSink {
 public:
  Result<ByteSink*> begin_segment(uint64_t) override {
    segments.emplace_back();
    current_ = std::make_unique<StringSink>();
    return current_.get();
  }
  Status end_segment(uint64_t, bool) override {
    segments.back() = std::move(current_->data());
    return ok_status();
  }
  std::vector<std::string> segments;

 private:
  std::unique_ptr<StringSink> current_;
};

// Target layers over the fixed basis: unchanged files (S, runs), a copy under
// another name (C), one new content twice (E), new files (L), edited files
// (A; R with --effort max or signatures).
std::vector<Layer> make_target_layers(const fs::path& work) {
  fs::path root = work / "layer-tree";
  fs::create_directories(root);
  for (int i = 0; i < 2; ++i) {
    shell("tar -C " + root.string() + " -xf " +
          (data_dir() / ("layer_basis_" + std::to_string(i) + ".tar")).string());
  }
  fs::remove(root / "app/data/.wh.notes.txt");
  fs::remove(root / "app/data/notes.txt");
  std::vector<Layer> layers;

  // Layer A: mostly unchanged, some edits.
  std::string tool = read_file(root / "app/bin/tool");
  tool.replace(5000, 20, "an edit in the tool!");
  tool.insert(9000, "inserted bytes ");
  write_file(root / "app/bin/tool", tool);  // also changes the hard link (same inode)
  std::string config = read_file(root / "app/etc/config.txt");
  config += "one more line\n";
  write_file(root / "app/etc/config.txt", config);
  fs::copy_file(root / "app/lib/libx.so.1", root / "app/lib/libx-renamed.so");
  std::string fresh = text(40, 99);
  write_file(root / "app/new/one.txt", fresh);
  write_file(root / "app/new/two.txt", fresh);
  write_file(root / "app/new/random.bin", pseudo_random(700, 3));
  fs::path a = work / "target-a.tar";
  shell("tar --format=gnu " + kTarOptions + " -C " + root.string() + " -cf " + a.string() + " app");
  layers.push_back(index_layer(a));

  // Layer B: the basis files unchanged but rebuilt a year later (mtime-only),
  // in PAX format.
  fs::path b = work / "target-b.tar";
  shell(
      "tar --format=posix --pax-option=delete=atime,delete=ctime --sort=name --owner=0 "
      "--group=0 --numeric-owner --mtime='2025-01-01 00:00:00Z' -C " +
      root.string() + " -cf " + b.string() + " app/lib app/etc app/data");
  layers.push_back(index_layer(b));
  return layers;
}

// A stream written by hand with a 'Z' (local zstd delta) op, which the
// encoder no longer chooses but the decoder still reads.
std::string hand_made_z_stream(const LayerBasis& basis) {
  const FileRecord* tool = basis.basis->find_path("app/bin/tool");
  if (!tool) die("the basis has no app/bin/tool");
  int64_t content = basis.basis->content_id(tool->digest);
  if (content < 0) die("app/bin/tool has no basis content");
  const BasisContent& c = basis.basis->contents()[content];
  FileRangeRandomAccess basis_file(basis.files.fds[c.layer], c.payload_offset, c.size);
  std::string basis_bytes(c.size, '\0');
  {
    FileSource range(basis.files.fds[c.layer], c.payload_offset, c.size, "basis");
    check(read_exact(range, basis_bytes, "basis"), "read basis");
  }
  std::string edited = basis_bytes;
  edited.replace(100, 10, "0123456789");
  edited += "appended";
  MemoryRandomAccess new_file(edited);
  StringSink delta;
  check(local_delta_encode(basis_file, new_file, LocalDeltaParams{}, delta), "local delta");

  TarHeaderSpec spec;
  spec.path = "app/bin/tool";
  spec.size = edited.size();
  spec.mode = 0755;
  std::string records;
  records.push_back('\x01');
  std::string header = build_tar_header(spec);
  put_varint(records, header.size());
  records += header;
  records.push_back('Z');
  put_varint(records, static_cast<uint64_t>(content));
  put_varint(records, delta.data().size());
  records += delta.data();
  records.push_back('\0');    // zero padding
  records.push_back('\x10');  // end-of-archive zeros
  put_varint(records, 2 * kTarBlock);
  records.push_back('\x12');  // layer done
  StringSink out;
  auto zstd = make_zstd_prefix_sink(out, basis.basis->dictionary(), ZstdPrefixOptions{});
  check(zstd->write(records), "compress");
  check(zstd->finish(), "compress");
  return out.data();
}

std::string first_layer_stream;  // for the bundle and session seeds

// A stream's records before compression (fuzz_layer_stream's mode 2).
std::string plain_records(std::string_view stream) {
  return check(zstd_decompress_with_prefix(stream, layer_basis().basis->dictionary(), 64 << 20),
               "decompress layer stream");
}

void layer_stream_seeds(Seeds& seeds, const fs::path& work) {
  const LayerBasis& basis = layer_basis();
  std::vector<Layer> layers = make_target_layers(work);
  AllSignatures signatures(basis);
  for (size_t li = 0; li < layers.size(); ++li) {
    const Layer& layer = layers[li];
    std::string tag = std::string(1, static_cast<char>('a' + li));
    for (Effort effort : {Effort::kFast, Effort::kDefault, Effort::kMax}) {
      LayerStreamEncoder encoder(*basis.basis, basis.files, EncoderOptions{effort, 1});
      StringSink stream;
      LayerStreamStats stats;
      check(encoder.encode(layer.index, layer.fd.get(), stream, stats), "encode");
      std::string name = "layer-" + tag + "-" + std::string(effort_name(effort));
      seeds.add("layer_stream", name, "\x00"sv, stream.data());
      seeds.add("layer_stream", name + "-plain", "\x02"sv, plain_records(stream.data()));
      if (first_layer_stream.empty()) first_layer_stream = stream.data();
    }
    // Network mode: librsync deltas against the receiver's signatures ('R').
    {
      EncoderOptions options{Effort::kDefault, 1, &signatures};
      LayerStreamEncoder encoder(*basis.basis, basis.files, options);
      StringSink stream;
      LayerStreamStats stats;
      check(encoder.encode(layer.index, layer.fd.get(), stream, stats), "encode remote");
      seeds.add("layer_stream", "layer-" + tag + "-remote", "\x00"sv, stream.data());
    }
    // Segments of about 1 KiB of records (mode 1).
    {
      LayerStreamEncoder encoder(*basis.basis, basis.files, EncoderOptions{Effort::kDefault, 1});
      CollectSegments segments;
      LayerStreamStats stats;
      check(encoder.encode_segments(layer.index, layer.fd.get(), 0, 1024, segments, stats),
            "encode segments");
      std::string framed, framed_plain;
      for (const std::string& s : segments.segments) {
        append_frame(framed, s);
        append_frame(framed_plain, plain_records(s));
      }
      seeds.add("layer_stream", "layer-" + tag + "-segments", "\x01"sv, framed);
      seeds.add("layer_stream", "layer-" + tag + "-segments-plain", "\x03"sv, framed_plain);
    }
  }
  std::string z = hand_made_z_stream(basis);
  seeds.add("layer_stream", "hand-made-z", "\x00"sv, z);
  seeds.add("layer_stream", "hand-made-z-plain", "\x02"sv, plain_records(z));
}

// ---- block deltas --------------------------------------------------------------

void block_delta_seeds(Seeds& seeds) {
  const std::string& basis_bytes = block_delta_basis();
  std::vector<std::pair<std::string, std::string>> files;
  std::string edited = basis_bytes;
  edited.replace(30000, 50, std::string(50, 'x'));
  files.emplace_back("edited", edited);
  std::string inserted = basis_bytes;
  inserted.insert(12000, text(20, 5));
  files.emplace_back("inserted", inserted);
  files.emplace_back("deleted", basis_bytes.substr(0, 10000) + basis_bytes.substr(25000));
  files.emplace_back("new", pseudo_random(3000, 11));
  files.emplace_back("empty", "");
  files.emplace_back("same", basis_bytes);

  MemoryRandomAccess basis(basis_bytes);
  MemorySource basis_stream(basis_bytes);
  SignatureParams params = choose_signature_params(basis_bytes.size(), basis_bytes.size());
  std::string signature = check(rsync_signature(basis_stream, params), "signature");
  auto loaded = check(RsyncSignature::load(signature), "load signature");
  for (const auto& [name, content] : files) {
    MemorySource source(content);
    StringSink rsync;
    check(rsync_delta(*loaded, source, rsync), "rsync delta");
    seeds.add("block_delta", "rsync-" + name, "\x00\x00"sv, rsync.data());
    MemoryRandomAccess new_file(content);
    StringSink local;
    LocalDeltaParams local_params;
    local_params.segment_bytes = 16 << 10;  // several segments
    local_params.window_margin = 4 << 10;
    check(local_delta_encode(basis, new_file, local_params, local), "local delta");
    seeds.add("block_delta", "local-" + name, "\x01\x00"sv, local.data());
    StringSink anchored;
    AnchoredDeltaParams anchored_params;
    anchored_params.chunk_bytes = 4096;
    check(anchored_delta_encode(basis, new_file, anchored_params, anchored), "anchored delta");
    seeds.add("block_delta", "anchored-" + name, "\x02\x00"sv, anchored.data());
  }
  // A small output limit (limit byte 10: 970 bytes) on a delta that needs more.
  {
    MemorySource source(edited);
    StringSink rsync;
    check(rsync_delta(*loaded, source, rsync), "rsync delta");
    seeds.add("block_delta", "rsync-over-limit", "\x00\x0a"sv, rsync.data());
  }
  // Signatures with other block and strong-sum sizes (op 3).
  for (auto [block, strong] : {std::pair<uint32_t, uint32_t>{256, 8}, {2048, 16}, {4096, 32}}) {
    MemorySource again(basis_bytes);
    std::string sig = check(rsync_signature(again, SignatureParams{block, strong}), "signature");
    seeds.add("block_delta", "signature-" + std::to_string(block), "\x03\x00"sv, sig);
  }
}

// ---- bundles -----------------------------------------------------------------

void bundle_seeds(Seeds& seeds) {
  const LayerBasis& basis = layer_basis();
  wire::BundleHeader header;
  header.set_format_version(kBundleFormatVersion);
  header.set_effort("default");
  header.set_created_by("fuzz_make_seeds");
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})";
  header.mutable_target()->set_config(config);
  header.mutable_target()->set_image_id(Digest::of(config).str());
  header.mutable_target()->add_tags("app:2.0.0");
  for (const LayerIndex& index : basis.indexes) {
    header.mutable_target()->add_diff_ids(index.diff_id.str());
    header.mutable_basis()->add_diff_ids(index.diff_id.str());
  }
  header.mutable_target()->add_diff_ids(Digest::of("new layer").str());
  auto* plan = header.add_layers();
  plan->set_target_index(2);
  plan->set_diff_id(Digest::of("new layer").str());
  plan->set_tar_size(10240);
  plan->set_entries(3);

  for (int layers = 0; layers <= 2; ++layers) {
    StringSink out;
    BundleWriter writer(out);
    check(writer.write_header(header), "bundle header");
    for (int i = 0; i < layers; ++i) {
      check(writer.begin_layer(2), "begin layer");
      // Two chunks: the stream, then a second copy, so a layer has several frames.
      check(writer.layer_data().write(first_layer_stream), "layer data");
      check(writer.end_layer(2), "end layer");
    }
    uint64_t before_trailer = writer.bytes_written();
    check(writer.finish(), "bundle trailer");
    std::string name = "bundle-" + std::to_string(layers) + "-layers";
    seeds.add("bundle_reader", name, "\x00"sv, out.data());
    seeds.add("bundle_reader", name + "-no-trailer", "\x01"sv,
              std::string_view(out.data()).substr(0, before_trailer));
  }
}

// ---- image archives ------------------------------------------------------------

std::string small_layer_tar(const fs::path& work, const std::string& name, int seed) {
  fs::path dir = work / ("image-layer-" + name);
  write_file(dir / "app" / (name + ".txt"), text(10, seed));
  write_file(dir / "app/bin/run", pseudo_random(300, static_cast<uint32_t>(seed)));
  fs::path tar = work / ("image-layer-" + name + ".tar");
  shell("tar --format=gnu --record-size=512 " + kTarOptions + " -C " + dir.string() + " -cf " +
        tar.string() + " app");
  return read_file(tar);
}

std::string image_config(const std::vector<Digest>& diff_ids) {
  std::string ids;
  for (const Digest& d : diff_ids) ids += (ids.empty() ? "\"" : ",\"") + d.str() + "\"";
  return R"({"architecture":"amd64","config":{"Cmd":["/app/bin/run"]},"os":"linux",)"
         R"("rootfs":{"type":"layers","diff_ids":[)" +
         ids + "]}}";
}

std::string compress(std::string_view data, Compression kind) {
  StringSink out;
  auto sink = kind == Compression::kGzip ? make_gzip_sink(out, 6) : make_zstd_sink(out, 3);
  check(sink->write(data), "compress");
  check(sink->finish(), "compress");
  return out.data();
}

void archive_seeds(Seeds& seeds, const fs::path& work) {
  std::string l1 = small_layer_tar(work, "base", 1), l2 = small_layer_tar(work, "top", 2);
  std::vector<Digest> diff_ids{Digest::of(l1), Digest::of(l2)};
  std::string config = image_config(diff_ids);

  // docker-archive (legacy `docker save` layout) by DockerArchiveWriter.
  {
    StringSink out;
    DockerArchiveWriter writer(out, config, {"app:1.0"});
    MemorySource s1(l1), s2(l2);
    check(writer.add_layer(diff_ids[0], l1.size(), s1), "add layer");
    check(writer.add_layer(diff_ids[1], l2.size(), s2), "add layer");
    check(writer.finish(), "finish archive");
    seeds.add("archive_reader", "docker-archive", "\x00"sv, out.data());
    seeds.add("archive_reader", "docker-archive-ref", "\x02"sv, out.data());
  }
  // An OCI layout (gzip and zstd layers), also carrying manifest.json as
  // `docker save` of Docker 25+ writes it, tarred by GNU tar.
  fs::path oci = work / "oci";
  fs::create_directories(oci / "blobs/sha256");
  auto blob = [&](std::string_view data) {
    Digest d = Digest::of(data);
    write_file(oci / "blobs/sha256" / d.hex(), data);
    return d;
  };
  std::string gz = compress(l1, Compression::kGzip), zst = compress(l2, Compression::kZstd);
  Digest gz_d = blob(gz), zst_d = blob(zst), config_d = blob(config);
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      config_d.str() + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      gz_d.str() + R"(","size":)" + std::to_string(gz.size()) +
      R"(},{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + zst_d.str() +
      R"(","size":)" + std::to_string(zst.size()) + "}]}";
  Digest manifest_d = blob(manifest);
  write_file(oci / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  write_file(oci / "index.json",
             R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)"
             R"("manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
             R"("digest":")" +
                 manifest_d.str() + R"(","size":)" + std::to_string(manifest.size()) +
                 R"(,"annotations":{"org.opencontainers.image.ref.name":"1.0",)"
                 R"("io.containerd.image.name":"app:1.0"}}]})");
  fs::path oci_tar = work / "oci.tar";
  shell("tar --format=posix --record-size=512 " + kTarOptions + " -C " + oci.string() + " -cf " +
        oci_tar.string() + " oci-layout index.json blobs");
  seeds.add("archive_reader", "oci-archive", "\x01"sv, read_file(oci_tar));
  seeds.add("archive_reader", "oci-archive-ref", "\x03"sv, read_file(oci_tar));
  write_file(oci / "manifest.json", R"([{"Config":"blobs/sha256/)" + config_d.hex() +
                                        R"(","RepoTags":["app:1.0"],"Layers":["blobs/sha256/)" +
                                        gz_d.hex() + R"(","blobs/sha256/)" + zst_d.hex() +
                                        R"("]}])");
  fs::path docker_oci = work / "docker-oci.tar";
  shell("tar --format=posix --record-size=512 " + kTarOptions + " -C " + oci.string() + " -cf " +
        docker_oci.string() + " oci-layout index.json manifest.json blobs");
  seeds.add("archive_reader", "docker-archive-oci", "\x00"sv, read_file(docker_oci));
}

// ---- indexes -------------------------------------------------------------------

void index_seeds(Seeds& seeds) {
  const LayerBasis& basis = layer_basis();
  for (size_t i = 0; i < basis.indexes.size(); ++i) {
    for (size_t digest_bytes : {size_t{32}, size_t{12}}) {
      std::string encoded =
          check(encode_layer_index(basis.indexes[i], digest_bytes), "encode index");
      std::string name = "basis-" + std::to_string(i) + "-d" + std::to_string(digest_bytes);
      seeds.add("index_codec", name, "\x00"sv, encoded);
      std::string plain = check(zstd_decompress(encoded, 64 << 20), "decompress index");
      plain.resize(plain.size() - 32);  // mode 1: the target adds the checksum
      seeds.add("index_codec", name + "-plain", "\x01"sv, plain);
    }
  }
}

// ---- distribution identities --------------------------------------------------

void distribution_seeds(Seeds& seeds) {
  for (size_t layers : {size_t{1}, size_t{3}}) {
    DistributionIdentity identity;
    std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"})";
    std::string index = R"({"schemaVersion":2,"manifests":[]})";
    identity.documents = {index, manifest};
    identity.target = {"application/vnd.oci.image.index.v1+json", Digest::of(index), index.size()};
    identity.manifest_digest = Digest::of(manifest);
    identity.platform = "linux/amd64";
    for (size_t i = 0; i < layers; ++i) {
      DistributionLayer layer;
      layer.diff_id = Digest::of("layer " + std::to_string(i));
      layer.blob = {"application/vnd.oci.image.layer.v1.tar+gzip",
                    Digest::of("blob " + std::to_string(i)), 1000 + i};
      if (i != 1) layer.recipe = BlobRecipe{"0123456789abcdef", -1};
      identity.layers.push_back(layer);
    }
    std::string encoded = encode_distribution(identity);
    std::string name = "identity-" + std::to_string(layers);
    seeds.add("distribution_codec", name, std::string("\x00", 1) + static_cast<char>(layers),
              encoded);
    seeds.add("distribution_codec", name + "-plain",
              std::string("\x01", 1) + static_cast<char>(layers),
              check(zstd_decompress(encoded, 64 << 20), "decompress identity"));
  }
}

// ---- session frames ------------------------------------------------------------

class CaptureTransport final : public FrameTransport {
 public:
  Status send_frame(std::string_view payload) override {
    frames.emplace_back(payload);
    return ok_status();
  }
  Result<std::string> receive_frame() override {
    return make_error(ErrorCode::kUnavailable, "capture only");
  }
  const std::string& peer_address() const override { return address_; }
  std::vector<std::string> frames;

 private:
  std::string address_ = "seeds";
};

std::string framed(const std::vector<std::string>& frames) {
  std::string out;
  for (const std::string& f : frames) append_frame(out, f);
  return out;
}

void session_seeds(Seeds& seeds) {
  const LayerBasis& basis = layer_basis();
  auto frame_bytes = [](const wire::SessionFrame& frame) {
    CaptureTransport t;
    WireChannel wire(t);
    check(wire.send(frame), "send");
    return t.frames.at(0);
  };
  wire::SessionFrame hello;
  hello.mutable_hello()->set_protocol_version(kProtocolVersion);
  hello.mutable_hello()->set_client_version("deltasend 0.1");
  hello.mutable_hello()->set_reference("app:2.0.0");
  hello.mutable_hello()->mutable_target()->set_image_id(Digest::of("config").str());
  for (const LayerIndex& index : basis.indexes)
    hello.mutable_hello()->mutable_target()->add_diff_ids(index.diff_id.str());
  hello.mutable_hello()->mutable_target()->add_tags("app:2.0.0");

  wire::SessionFrame inventory;
  inventory.mutable_inventory()->set_protocol_version(kProtocolVersion);
  inventory.mutable_inventory()->set_engine_layers(1);
  inventory.mutable_inventory()->add_stored_layers(1);
  inventory.mutable_inventory()->mutable_basis()->add_diff_ids(basis.indexes[0].diff_id.str());
  auto* partial = inventory.mutable_inventory()->add_partial();
  partial->set_target_index(1);
  partial->set_entries_done(4);
  partial->set_tar_bytes(4096);

  wire::SessionFrame plan;
  plan.mutable_plan()->set_mode(wire::Plan::REMOTE);
  plan.mutable_plan()->add_index_layers(0);
  plan.mutable_plan()->set_index_digest_bytes(12);
  plan.mutable_plan()->add_layers(1);

  wire::SessionFrame index_chunk;
  index_chunk.mutable_index_chunk()->set_basis_layer(0);
  index_chunk.mutable_index_chunk()->set_data(
      check(encode_layer_index(basis.indexes[1], 12), "index").substr(0, 2000));
  index_chunk.mutable_index_chunk()->set_last(true);

  wire::SessionFrame sig_request;
  auto* item = sig_request.mutable_signature_request()->add_items();
  item->set_content_id(2);
  item->set_target_size(12000);
  wire::SessionFrame sig_chunk;
  sig_chunk.mutable_signature_chunk()->set_content_id(2);
  sig_chunk.mutable_signature_chunk()->set_data(std::string(200, 's'));
  sig_chunk.mutable_signature_chunk()->set_last(true);
  wire::SessionFrame sigs_done;
  sigs_done.mutable_signatures_done();

  wire::SessionFrame segment_begin;
  segment_begin.mutable_segment_begin()->set_target_index(1);
  segment_begin.mutable_segment_begin()->set_first_entry(0);
  wire::SessionFrame segment_end;
  segment_end.mutable_segment_end()->set_target_index(1);
  segment_end.mutable_segment_end()->set_next_entry(12);
  segment_end.mutable_segment_end()->set_layer_done(true);
  wire::SessionFrame progress;
  progress.mutable_progress()->set_phase("exporting the basis");
  progress.mutable_progress()->set_done(5);
  progress.mutable_progress()->set_total(10);

  wire::SessionFrame commit;
  commit.mutable_commit()->mutable_target()->set_config_zstd(
      check(zstd_compress(R"({"os":"linux"})", 3), "zstd"));
  wire::SessionFrame result;
  result.mutable_result()->set_ok(true);
  result.mutable_result()->set_image_id(Digest::of("config").str());
  result.mutable_result()->mutable_counters()->set_seconds(1.5);
  wire::SessionFrame status_request;
  status_request.mutable_status_request();
  wire::SessionFrame status_reply;
  status_reply.mutable_status_reply()->set_receiver_version("0.1");
  status_reply.mutable_status_reply()->add_images()->add_tags("app:1.0");

  // A segment's data as DataFrameSink sends it (one frame per finish()).
  CaptureTransport data_transport;
  {
    WireChannel wire(data_transport);
    DataFrameSink sink(wire);
    std::string_view stream = first_layer_stream;
    for (size_t at = 0; at < stream.size(); at += 1500) {
      check(sink.write(stream.substr(at, 1500)), "data");
      check(sink.finish(), "data");
    }
  }
  CaptureTransport error_transport;
  {
    WireChannel wire(error_transport);
    wire.send_error(Error(ErrorCode::kCorrupt, "layer 2: entry 3: bad header checksum"));
    wire.send_error(Error(ErrorCode::kNoSpace, "store: no space left"));
  }

  std::vector<std::string> everything{
      frame_bytes(hello),          frame_bytes(inventory),     frame_bytes(plan),
      frame_bytes(index_chunk),    frame_bytes(sig_request),   frame_bytes(sig_chunk),
      frame_bytes(sigs_done),      frame_bytes(segment_begin), frame_bytes(progress),
      frame_bytes(segment_end),    frame_bytes(commit),        frame_bytes(result),
      frame_bytes(status_request), frame_bytes(status_reply)};
  std::vector<std::string> segment{frame_bytes(segment_begin)};
  for (size_t i = 0; i < data_transport.frames.size(); ++i) {
    segment.push_back(data_transport.frames[i]);
    if (i == 0) segment.push_back(frame_bytes(progress));
  }
  segment.push_back(frame_bytes(segment_end));
  std::vector<std::string> data_only(segment.begin() + 1, segment.end());

  seeds.add("session_frame", "receive-all", "\x00\x0a"sv, framed(everything));
  seeds.add("session_frame", "receive-errors", "\x00\x0a"sv, framed(error_transport.frames));
  // expect(kind): selector = mode 1 | kind index << 2 (see kKinds).
  seeds.add("session_frame", "expect-plan", std::string{static_cast<char>(1 | (3 << 2)), '\0'},
            framed({frame_bytes(progress), frame_bytes(progress), frame_bytes(plan)}));
  seeds.add("session_frame", "expect-commit", std::string{static_cast<char>(1 | (11 << 2)), '\0'},
            framed({frame_bytes(progress), frame_bytes(commit)}));
  seeds.add("session_frame", "expect-inventory-gets-error",
            std::string{static_cast<char>(1 | (2 << 2)), '\0'}, framed(error_transport.frames));
  seeds.add("session_frame", "data-source", "\x02\x05"sv, framed(data_only));
  seeds.add("session_frame", "data-source-big-reads", "\x02\x10"sv, framed(data_only));
  seeds.add("session_frame", "segment", "\x03\x09"sv, framed(segment));
}

int run(const fs::path& out) {
  spdlog::set_level(spdlog::level::warn);
  fs::remove_all(out);
  fs::create_directories(out);
  auto work = check(TempDir::create(default_temp_parent(), "deltasync-fuzz-seeds-"), "temp dir");
  Seeds seeds(out);
  tar_seeds(seeds, work.path());
  layer_stream_seeds(seeds, work.path());
  block_delta_seeds(seeds);
  bundle_seeds(seeds);
  archive_seeds(seeds, work.path());
  index_seeds(seeds);
  distribution_seeds(seeds);
  session_seeds(seeds);
  for (const Target& target : targets()) {
    auto it = seeds.counts().find(std::string(target.name));
    if (it == seeds.counts().end()) die("no seeds for " + std::string(target.name));
    std::cout << target.name << ": " << it->second << " seeds\n";
  }
  return 0;
}

}  // namespace
}  // namespace deltasync::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds OUT_DIR\n";
    return 2;
  }
  return deltasync::fuzz::run(argv[1]);
}
