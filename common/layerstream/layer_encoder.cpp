// The layer-stream encoder. For each entry of the target layer, in order:
//   1. header: coded against the basis entry of the same path when
//      HeaderCoder can reproduce it, else raw;
//   2. payload: the cheapest op we can prove: same bytes as that basis entry
//      ('S'), as any basis content ('C'), as an earlier entry ('E'); else a
//      block delta against the best basis file (same path; then the same name
//      in a renamed folder; then the same name elsewhere, closest size),
//      computed by worker threads ahead of the writer; else a literal.
//      Small files with a delta basis are not coded one by one but in
//      groups ('G', then 'g' for the other members): one zstd frame holds
//      the group's new payloads with all their basis files as prefix, so a
//      change repeated across files (a version bump in a package's sources,
//      its minified copy and its source maps) is paid for once.
// The records go through one zstd stream whose prefix is the basis headers.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/codec/compression.h"
#include "common/delta/block_delta.h"
#include "common/layerstream/header_codec.h"
#include "common/layerstream/layer_stream.h"
#include "common/tar/tar_entry.h"
#include "common/util/varint.h"

namespace deltasync {

Result<Effort> parse_effort(const std::string& text) {
  if (text == "fast") return Effort::kFast;
  if (text == "default") return Effort::kDefault;
  if (text == "max") return Effort::kMax;
  return make_error(ErrorCode::kInvalidArgument,
                    "effort '" + text + "' is not one of fast, default, max");
}

std::string_view effort_name(Effort effort) {
  switch (effort) {
    case Effort::kFast:
      return "fast";
    case Effort::kDefault:
      return "default";
    case Effort::kMax:
      return "max";
  }
  return "default";
}

void LayerStreamStats::add(const LayerStreamStats& o) {
  entries += o.entries;
  headers_coded += o.headers_coded;
  headers_raw += o.headers_raw;
  same_as_basis += o.same_as_basis;
  same_as_earlier += o.same_as_earlier;
  reused_bytes += o.reused_bytes;
  literal_files += o.literal_files;
  literal_bytes += o.literal_bytes;
  delta_files += o.delta_files;
  delta_source_bytes += o.delta_source_bytes;
  delta_bytes += o.delta_bytes;
  record_bytes += o.record_bytes;
  stream_bytes += o.stream_bytes;
}

namespace {

constexpr uint64_t kMinDeltaFile = 64;  // below this a literal is as cheap as any delta

// Delta groups: members are files up to kGroupMemberMax whose basis file is
// at most kGroupBasisMax; a group holds at most kGroupDataMax of new bytes
// and kGroupPrefixMax of basis bytes (the decoder holds both in memory) and
// is looked for within kGroupLookahead entries. Larger files keep the
// anchored delta, which copies unchanged runs without compressing them.
constexpr uint64_t kGroupMemberMax = 1u << 20;
constexpr uint64_t kGroupBasisMax = 4u << 20;
constexpr uint64_t kGroupDataMax = 4u << 20;
constexpr uint64_t kGroupPrefixMax = 16u << 20;
constexpr size_t kGroupLookahead = 4096;

struct DeltaResult {
  char op = 'L';  // 'R', 'Z', 'A', 'G' or 'L' (no useful delta)
  uint32_t content_id = 0;
  std::string bytes;
  Status status;
  std::vector<size_t> members;  // 'G': the group's entries, first one first
};

// Scores how likely a basis path is an older version of `path`.
int64_t path_similarity(const std::string& a, const std::string& b) {
  auto split = [](const std::string& p) {
    std::vector<std::string_view> parts;
    size_t i = 0;
    while (i <= p.size()) {
      size_t j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      parts.emplace_back(p.data() + i, j - i);
      i = j + 1;
    }
    return parts;
  };
  auto pa = split(a), pb = split(b);
  int64_t score = 0;
  size_t n = std::min(pa.size(), pb.size());
  for (size_t i = 0; i < n && pa[pa.size() - 1 - i] == pb[pb.size() - 1 - i]; ++i)
    score += 4;                                                 // common suffix
  for (size_t i = 0; i < n && pa[i] == pb[i]; ++i) score += 2;  // common prefix
  if (pa.size() == pb.size()) score += 1;
  return score;
}

}  // namespace

// Counts the compressed bytes of one segment; finishing the segment's zstd
// stream does not finish the sink beneath.
struct CountingPassSink final : ByteSink {
  explicit CountingPassSink(ByteSink& o) : out(o) {}
  Status write(std::string_view d) override {
    count += d.size();
    return out.write(d);
  }
  ByteSink& out;
  uint64_t count = 0;
};

struct LayerStreamEncoder::Impl {
  const Basis& basis;
  const LayerFiles& basis_files;
  EncoderOptions options;
  // Content already encoded in this image -> global entry number.
  std::unordered_map<Digest, uint64_t, DigestHash> earlier;
  uint64_t global_entry = 0;

  Impl(const Basis& b, const LayerFiles& f, EncoderOptions o)
      : basis(b), basis_files(f), options(o) {}

  std::optional<uint32_t> choose_delta_basis(const FileRecord& target) const {
    if (target.size < kMinDeltaFile) return std::nullopt;
    if (const FileRecord* same = basis.find_path(target.path);
        same && (same->kind == FileKind::kRegular || same->kind == FileKind::kHardlink) &&
        same->size > 0) {
      int64_t id = basis.content_id(same->digest);
      if (id >= 0) return static_cast<uint32_t>(id);
    }
    if (options.effort == Effort::kFast) return std::nullopt;
    const auto* named = basis.contents_named(path_base_name(target.path));
    if (!named) return std::nullopt;
    std::optional<uint32_t> best;
    int64_t best_score = -1;
    uint64_t best_size_gap = UINT64_MAX;
    for (uint32_t id : *named) {
      const BasisContent& c = basis.contents()[id];
      if (c.size * 4 < target.size || c.size > target.size * 4) continue;  // too different to help
      int64_t score = path_similarity(target.path, c.path);
      uint64_t gap = c.size > target.size ? c.size - target.size : target.size - c.size;
      if (score > best_score || (score == best_score && gap < best_size_gap)) {
        best = id, best_score = score, best_size_gap = gap;
      }
    }
    return best;
  }

  // Network mode: only the site holds the basis; a librsync delta against
  // the signature it sent.
  DeltaResult compute_remote_delta(const FileRecord& target, int layer_fd,
                                   uint32_t content_id) const {
    DeltaResult result;
    result.content_id = content_id;
    const std::vector<SignatureRound>* rounds = options.signatures->find(content_id);
    if (rounds == nullptr || rounds->empty()) return result;
    StringSink delta;
    if (const RoundsDelta* matched =
            options.signatures->matched(content_id, target.payload_offset)) {
      result.status = matched->write(delta);
    } else {
      FileRangeRandomAccess new_file(layer_fd, target.payload_offset, target.size);
      RoundsDelta builder(new_file, basis.contents()[content_id].size);
      for (const SignatureRound& round : *rounds) {
        result.status = builder.add_round(round);
        if (!result.status) return result;
      }
      result.status = builder.write(delta);
    }
    if (!result.status || delta.data().size() >= target.size) return result;
    result.op = 'R';
    result.bytes = std::move(delta.data());
    return result;
  }

  // The cheap ops do not need a delta; which basis content a delta would use.
  std::optional<uint32_t> wants_delta(const FileRecord& r) const {
    if (!(r.kind == FileKind::kRegular || r.kind == FileKind::kOther) || r.size == 0)
      return std::nullopt;
    if (basis.content_id(r.digest) >= 0) return std::nullopt;
    return choose_delta_basis(r);
  }

  DeltaResult compute_delta(const FileRecord& target, int layer_fd, uint32_t content_id) const {
    DeltaResult result;
    result.content_id = content_id;
    if (options.signatures != nullptr) return compute_remote_delta(target, layer_fd, content_id);
    const BasisContent& c = basis.contents()[content_id];
    FileRangeRandomAccess basis_file(basis_files.fds[c.layer], c.payload_offset, c.size);
    FileRangeRandomAccess new_file(layer_fd, target.payload_offset, target.size);
    // Unchanged runs are copied; only changed regions are compressed, so a
    // high level costs time in proportion to what changed.
    AnchoredDeltaParams params;
    params.level = options.effort == Effort::kFast      ? 3
                   : options.effort == Effort::kDefault ? 9
                   : target.size <= (32u << 20)         ? 19
                                                        : 9;
    StringSink local;
    result.status = anchored_delta_encode(basis_file, new_file, params, local);
    if (!result.status) return result;
    std::string best = std::move(local.data());
    char op = 'A';
    if (options.effort == Effort::kMax) {
      FileRangeRandomAccess basis_again(basis_files.fds[c.layer], c.payload_offset, c.size);
      struct RangeSource final : ByteSource {
        RangeSource(int fd, uint64_t off, uint64_t len) : file(fd, off, len, "basis file") {}
        Result<size_t> read(std::span<char> b) override { return file.read(b); }
        FileSource file;
      };
      RangeSource basis_stream(basis_files.fds[c.layer], c.payload_offset, c.size);
      auto signature = rsync_signature(basis_stream, choose_signature_params(c.size, target.size));
      if (signature) {
        auto loaded = RsyncSignature::load(*signature);
        if (loaded) {
          RangeSource new_stream(layer_fd, target.payload_offset, target.size);
          StringSink rsync;
          if (rsync_delta(**loaded, new_stream, rsync) && rsync.data().size() < best.size()) {
            best = std::move(rsync.data());
            op = 'R';
          }
        }
      }
    }
    // A delta that is not clearly smaller than the file is not worth a basis read.
    if (best.size() >= target.size) return result;
    result.op = op;
    result.bytes = std::move(best);
    return result;
  }
};

// A group delta (see the top of the file): 'G' record body
//   varint(total new bytes) varint(prefix count) prefix count x varint(content)
//   varint(frame length) <zstd frame of the members' payloads, prefix = the
//   listed basis contents concatenated in order>
struct GroupCoder {
  // At default effort only text joins: there a change recurs across files
  // (sources, bundles, maps); compiled files gain little from a group and
  // cost more at its level than their anchored delta (the binaries pair:
  // 832,759 B in 0.63 s grouped, 830,458 B in 0.48 s file by file). Text
  // here is "no NUL in the first KiB".
  static bool can_join(const Basis& basis, const FileRecord& target, uint32_t basis_id,
                       Effort effort, int layer_fd) {
    if (target.size > kGroupMemberMax || basis.contents()[basis_id].size > kGroupBasisMax)
      return false;
    if (effort == Effort::kMax) return true;
    char head[1024];
    size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof head, target.size));
    FileSource source(layer_fd, target.payload_offset, want, "layer tar");
    if (!read_exact(source, std::span<char>(head, want), "layer tar")) return false;
    return std::memchr(head, 0, want) == nullptr;
  }

  static DeltaResult compute(const Basis& basis, const LayerFiles& basis_files,
                             const LayerIndex& index, int layer_fd,
                             const std::vector<size_t>& members,
                             const std::vector<uint32_t>& prefix_ids, Effort effort) {
    DeltaResult result;
    result.op = 'G';
    result.members = members;
    std::string prefix, data;
    auto append = [](std::string& to, int fd, uint64_t offset, uint64_t size,
                     std::string_view what) -> Status {
      size_t at = to.size();
      to.resize(at + size);
      FileSource source(fd, offset, size, std::string(what));
      return read_exact(source, std::span<char>(to.data() + at, size), what);
    };
    for (uint32_t id : prefix_ids) {
      const BasisContent& c = basis.contents()[id];
      result.status =
          append(prefix, basis_files.fds[c.layer], c.payload_offset, c.size, "basis file");
      if (!result.status) return result;
    }
    for (size_t entry : members) {
      const FileRecord& r = index.entries[entry];
      result.status = append(data, layer_fd, r.payload_offset, r.size, "layer tar");
      if (!result.status) return result;
    }
    // Level 19's optimal parser finds the many short matches a source edit
    // leaves (on deps-bump: 163 KB against 199 KB at level 12, for 5x the
    // time). A shallow btopt search (level 12 with strategy 7, searchLog 2)
    // was tried for default and lost the matches into the right basis file
    // once the prefix held a few MiB of similar files (299 KB).
    ZstdPrefixOptions zopts;
    zopts.checksum = false;  // the layer's sha256 is checked on the site
    zopts.level = effort == Effort::kMax ? 19 : 12;
    auto frame = zstd_compress_with_prefix(data, prefix, zopts);
    if (!frame) {
      result.status = std::unexpected(std::move(frame).error());
      return result;
    }
    put_varint(result.bytes, data.size());
    put_varint(result.bytes, prefix_ids.size());
    for (uint32_t id : prefix_ids) put_varint(result.bytes, id);
    put_varint(result.bytes, frame->size());
    result.bytes += *frame;
    return result;
  }
};

LayerStreamEncoder::LayerStreamEncoder(const Basis& basis, const LayerFiles& basis_files,
                                       EncoderOptions options)
    : impl_(std::make_unique<Impl>(basis, basis_files, options)) {}
LayerStreamEncoder::~LayerStreamEncoder() = default;

void LayerStreamEncoder::skip_entries(const LayerIndex& index, uint64_t begin, uint64_t end) {
  Impl& im = *impl_;
  end = std::min<uint64_t>(end, index.entries.size());
  for (uint64_t i = begin; i < end; ++i) {
    const FileRecord& r = index.entries[i];
    if (r.size > 0 && (r.kind == FileKind::kRegular || r.kind == FileKind::kOther))
      im.earlier.emplace(r.digest, im.global_entry);
    ++im.global_entry;
  }
}

std::vector<DeltaCandidate> LayerStreamEncoder::delta_candidates(const LayerIndex& index,
                                                                 uint64_t first_entry) const {
  std::vector<DeltaCandidate> out;
  std::unordered_map<uint32_t, size_t> seen;
  for (uint64_t i = first_entry; i < index.entries.size(); ++i) {
    const FileRecord& r = index.entries[i];
    auto id = impl_->wants_delta(r);
    if (!id) continue;
    auto [it, inserted] = seen.emplace(*id, out.size());
    if (inserted) {
      out.push_back(
          DeltaCandidate{*id, r.size, r.payload_offset, impl_->basis.contents()[*id].size});
    } else if (r.size > out[it->second].target_size) {
      out[it->second].target_size = r.size;
      out[it->second].target_offset = r.payload_offset;
    }
  }
  return out;
}

Status LayerStreamEncoder::encode(const LayerIndex& index, int layer_fd, ByteSink& out,
                                  LayerStreamStats& stats) {
  struct OneSegment final : SegmentSink {
    explicit OneSegment(ByteSink& o) : out(o) {}
    Result<ByteSink*> begin_segment(uint64_t) override { return &out; }
    Status end_segment(uint64_t, bool) override { return ok_status(); }
    ByteSink& out;
  } one(out);
  return encode_segments(index, layer_fd, 0, UINT64_MAX, one, stats);
}

Status LayerStreamEncoder::encode_segments(const LayerIndex& index, int layer_fd,
                                           uint64_t first_entry, uint64_t segment_bytes,
                                           SegmentSink& out, LayerStreamStats& stats) {
  Impl& im = *impl_;
  // Literal bytes the stream will carry (new content without a delta basis):
  // when there is little, a higher level costs little time.
  uint64_t planned_literal = 0;
  for (uint64_t i = first_entry; i < index.entries.size(); ++i) {
    const FileRecord& r = index.entries[i];
    if ((r.kind == FileKind::kRegular || r.kind == FileKind::kOther) && r.size > 0 &&
        im.basis.content_id(r.digest) < 0 && !im.choose_delta_basis(r)) {
      planned_literal += r.size;
    }
  }
  ZstdPrefixOptions zopts;
  zopts.level = im.options.effort == Effort::kFast      ? 1
                : im.options.effort == Effort::kDefault ? (planned_literal < (64u << 20) ? 9 : 3)
                                                        : 19;
  zopts.long_distance_matching = im.options.effort == Effort::kMax;

  // The current segment: its zstd stream and the coding state, which starts
  // afresh in every segment so that each can be decoded on its own.
  struct Segment {
    std::unique_ptr<CountingPassSink> counted;
    std::unique_ptr<ByteSink> compressed;
    std::unique_ptr<BufferedSink> records;
    uint64_t record_bytes = 0;
    uint64_t entries = 0;
    HeaderCoder header_coder;
    int64_t previous_basis_entry = -1;
    int64_t previous_content = -1;
    uint64_t run = 0;
  };
  std::optional<Segment> seg;
  auto emit = [&](std::string_view bytes) -> Status {
    seg->record_bytes += bytes.size();
    return seg->records->write(bytes);
  };
  // A run record (0x03 count) stands for `count` entries that are each: the
  // next basis entry, only the mtime changed and equal to the previous
  // entry's, same bytes as the basis, zero padding. A rebuild that only
  // touched mtimes is a handful of these.
  auto flush_run = [&]() -> Status {
    if (seg->run == 0) return ok_status();
    std::string r(1, '\x03');
    put_varint(r, seg->run);
    seg->run = 0;
    return emit(r);
  };
  auto open_segment = [&](uint64_t first) -> Status {
    DS_ASSIGN_OR_RETURN(ByteSink * sink, out.begin_segment(first));
    seg.emplace();
    seg->counted = std::make_unique<CountingPassSink>(*sink);
    seg->compressed = make_zstd_prefix_sink(*seg->counted, im.basis.dictionary(), zopts);
    seg->records = std::make_unique<BufferedSink>(*seg->compressed, 256 * 1024);
    return ok_status();
  };
  // Ends the segment: 0x13 when the layer goes on, else the caller has
  // already written the trailer and 0x12.
  auto close_segment = [&](uint64_t next_entry, bool layer_done) -> Status {
    DS_RETURN_IF_ERROR(flush_run());
    if (!layer_done) DS_RETURN_IF_ERROR(emit(std::string(1, '\x13')));
    DS_RETURN_IF_ERROR(seg->records->finish());
    stats.record_bytes += seg->record_bytes;
    stats.stream_bytes += seg->counted->count;
    seg.reset();
    return out.end_segment(next_entry, layer_done);
  };

  // Delta jobs run ahead of the writer on worker threads, at most `threads`
  // at a time.
  struct Job {
    size_t entry;
    std::future<DeltaResult> result;
  };
  std::deque<Job> jobs;
  size_t next_to_plan = first_entry;
  const size_t max_inflight = static_cast<size_t>(std::max(1, im.options.threads));
  // Groups need the basis bytes and are not worth it at fast effort.
  const bool use_groups = im.options.signatures == nullptr && im.options.effort != Effort::kFast;
  std::unordered_set<size_t> grouped;  // entries planned into a group
  uint64_t group_members_left = 0;     // members of the group being written, after its first
  // Starting at `first`, collects the group members among the next entries.
  auto plan_group = [&](size_t first, uint32_t first_basis) {
    std::vector<size_t> members{first};
    std::vector<uint32_t> prefix_ids{first_basis};
    std::unordered_set<uint32_t> in_prefix{first_basis};
    uint64_t data_bytes = index.entries[first].size;
    uint64_t prefix_bytes = im.basis.contents()[first_basis].size;
    size_t end = std::min(index.entries.size(), first + kGroupLookahead);
    for (size_t k = first + 1; k < end; ++k) {
      const FileRecord& r = index.entries[k];
      auto basis_id = im.wants_delta(r);
      if (!basis_id || !GroupCoder::can_join(im.basis, r, *basis_id, im.options.effort, layer_fd))
        continue;
      uint64_t more_prefix = in_prefix.count(*basis_id) ? 0 : im.basis.contents()[*basis_id].size;
      if (data_bytes + r.size > kGroupDataMax || prefix_bytes + more_prefix > kGroupPrefixMax)
        break;
      members.push_back(k);
      data_bytes += r.size;
      if (in_prefix.insert(*basis_id).second) {
        prefix_ids.push_back(*basis_id);
        prefix_bytes += more_prefix;
      }
    }
    for (size_t k : members) grouped.insert(k);
    return std::make_pair(std::move(members), std::move(prefix_ids));
  };
  auto plan_ahead = [&](size_t upto) {
    while (next_to_plan < index.entries.size() &&
           next_to_plan <= upto + (use_groups ? kGroupLookahead : 64) &&
           jobs.size() < max_inflight) {
      const FileRecord& r = index.entries[next_to_plan];
      if (grouped.count(next_to_plan)) {
        // Already a member of a planned group.
      } else if (auto basis_id = im.wants_delta(r)) {
        if (use_groups &&
            GroupCoder::can_join(im.basis, r, *basis_id, im.options.effort, layer_fd)) {
          auto [members, prefix_ids] = plan_group(next_to_plan, *basis_id);
          jobs.push_back(Job{
              next_to_plan,
              std::async(std::launch::async, [&im, &index, layer_fd, members = std::move(members),
                                              prefix_ids = std::move(prefix_ids)] {
                return GroupCoder::compute(im.basis, im.basis_files, index, layer_fd, members,
                                           prefix_ids, im.options.effort);
              })});
        } else {
          jobs.push_back(
              Job{next_to_plan, std::async(std::launch::async, [&im, &r, layer_fd, id = *basis_id] {
                    return im.compute_delta(r, layer_fd, id);
                  })});
        }
      }
      ++next_to_plan;
    }
  };
  // On an early return, let running jobs finish before their inputs go away.
  struct JobDrain {
    std::deque<Job>& jobs;
    ~JobDrain() {
      for (auto& job : jobs)
        if (job.result.valid()) job.result.wait();
    }
  } drain{jobs};

  std::string rec;
  std::vector<char> copy_buffer(kIoChunk);
  uint64_t end_of_entries = 0;
  if (first_entry > 0 && first_entry <= index.entries.size()) {
    const FileRecord& previous = index.entries[first_entry - 1];
    end_of_entries = previous.payload_offset + previous.size + tar_padding(previous.size);
  }
  static const std::string kRunCoding("\x20\x00", 2);
  DS_RETURN_IF_ERROR(open_segment(first_entry));
  for (size_t i = first_entry; i < index.entries.size(); ++i) {
    plan_ahead(i);
    const FileRecord& r = index.entries[i];
    std::optional<DeltaResult> delta;
    if (!jobs.empty() && jobs.front().entry == i) {
      delta = jobs.front().result.get();
      jobs.pop_front();
      DS_RETURN_IF_ERROR(with_context(std::move(delta->status), "delta of /" + r.path));
    }
    // A segment holds about `segment_bytes` of records: end it before an
    // entry that would take it past that (unless the entry is its first).
    int64_t content = r.size > 0 ? im.basis.content_id(r.digest) : -1;
    uint64_t entry_bytes = r.raw_metadata.size() + 16;
    const bool group_member = grouped.count(i) > 0;
    if (group_member) {
      entry_bytes += delta ? delta->bytes.size() : 0;
    } else if (r.size > 0 && content < 0 && im.earlier.find(r.digest) == im.earlier.end()) {
      entry_bytes += delta && delta->op != 'L' ? delta->bytes.size() : r.size;
    }
    // A group's members all go in the segment of its first.
    if (seg->entries > 0 && group_members_left == 0 &&
        seg->record_bytes + entry_bytes > segment_bytes) {
      DS_RETURN_IF_ERROR(close_segment(i, false));
      DS_RETURN_IF_ERROR(open_segment(i));
    }
    rec.clear();
    ++stats.entries;
    ++seg->entries;
    bool simple = true;
    // Header.
    const FileRecord* basis_record = im.basis.find_path(r.path);
    bool coded = false;
    if (basis_record != nullptr) {
      int64_t id = im.basis.entry_id(basis_record);
      std::string coding;
      if (id >= 0 && seg->header_coder.encode(basis_record->raw_metadata, r.raw_metadata, coding)) {
        simple = coding == kRunCoding && id == seg->previous_basis_entry + 1;
        rec.push_back(0x02);
        put_varint(rec, zigzag(id - (seg->previous_basis_entry + 1)));
        rec += coding;
        seg->previous_basis_entry = id;
        coded = true;
        ++stats.headers_coded;
      }
    }
    if (!coded) {
      simple = false;
      rec.push_back(0x01);
      put_varint(rec, r.raw_metadata.size());
      rec += r.raw_metadata;
      ++stats.headers_raw;
    }
    // Payload op.
    if (r.size > 0) {
      bool basis_same =
          coded && im.basis.same_content(basis_record->digest, r.digest) &&
          basis_record->size == r.size &&
          (basis_record->kind == FileKind::kRegular || basis_record->kind == FileKind::kHardlink);
      spdlog::debug("encode /{}: size {} digest {} basis-content {} same-path {}", r.path, r.size,
                    r.digest.short_str(), content, basis_same);
      if (content >= 0 && basis_same) {
        rec.push_back('S');
        ++stats.same_as_basis;
        stats.reused_bytes += r.size;
      } else if (simple = false; content >= 0) {
        rec.push_back('C');
        put_varint(rec, zigzag(content - (seg->previous_content + 1)));
        seg->previous_content = content;
        ++stats.same_as_basis;
        stats.reused_bytes += r.size;
      } else if (group_member && delta) {
        // The group's first member: the frame of the whole group.
        rec.push_back('G');
        DS_RETURN_IF_ERROR(flush_run());
        DS_RETURN_IF_ERROR(emit(rec));
        rec.clear();
        DS_RETURN_IF_ERROR(emit(delta->bytes));
        group_members_left = delta->members.size() - 1;
        ++stats.delta_files;
        stats.delta_source_bytes += r.size;
        stats.delta_bytes += delta->bytes.size();
      } else if (group_member) {
        if (group_members_left == 0)
          return make_error(ErrorCode::kInternal, "delta group of /" + r.path + " was not written");
        rec.push_back('g');
        --group_members_left;
        ++stats.delta_files;
        stats.delta_source_bytes += r.size;
      } else if (auto e = im.earlier.find(r.digest); e != im.earlier.end()) {
        rec.push_back('E');
        put_varint(rec, im.global_entry - e->second);
        ++stats.same_as_earlier;
        stats.reused_bytes += r.size;
      } else if (delta && delta->op != 'L') {
        rec.push_back(delta->op);
        put_varint(rec, delta->content_id);
        put_varint(rec, delta->bytes.size());
        DS_RETURN_IF_ERROR(flush_run());
        DS_RETURN_IF_ERROR(emit(rec));
        rec.clear();
        DS_RETURN_IF_ERROR(emit(delta->bytes));
        ++stats.delta_files;
        stats.delta_source_bytes += r.size;
        stats.delta_bytes += delta->bytes.size();
      } else {
        rec.push_back('L');
        DS_RETURN_IF_ERROR(flush_run());
        DS_RETURN_IF_ERROR(emit(rec));
        rec.clear();
        FileSource payload(layer_fd, r.payload_offset, r.size, "layer tar");
        uint64_t remaining = r.size;
        while (remaining > 0) {
          size_t want = std::min<uint64_t>(remaining, copy_buffer.size());
          DS_RETURN_IF_ERROR(
              read_exact(payload, std::span<char>(copy_buffer.data(), want), "layer tar"));
          DS_RETURN_IF_ERROR(emit(std::string_view(copy_buffer.data(), want)));
          remaining -= want;
        }
        ++stats.literal_files;
        stats.literal_bytes += r.size;
      }
      if (r.kind == FileKind::kRegular || r.kind == FileKind::kOther)
        im.earlier.emplace(r.digest, im.global_entry);
    }
    // Padding: normally zeros; read it to be sure.
    uint64_t pad = tar_padding(r.size);
    std::string padding(pad, '\0');
    if (pad > 0) {
      FileSource pad_source(layer_fd, r.payload_offset + r.size, pad, "layer tar");
      DS_RETURN_IF_ERROR(read_exact(pad_source, padding, "layer tar padding"));
    }
    if (std::all_of(padding.begin(), padding.end(), [](char c) { return c == 0; })) {
      rec.push_back(0x00);
    } else {
      simple = false;
      rec.push_back(0x01);
      rec += padding;
    }
    if (simple) {
      ++seg->run;
    } else {
      DS_RETURN_IF_ERROR(flush_run());
      DS_RETURN_IF_ERROR(emit(rec));
    }
    end_of_entries = r.payload_offset + r.size + pad;
    ++im.global_entry;
    if (im.options.on_progress) im.options.on_progress(end_of_entries);
  }
  DS_RETURN_IF_ERROR(flush_run());
  // Trailer: the end-of-archive blocks and anything after them.
  if (index.tar_size < end_of_entries)
    return make_error(ErrorCode::kInternal, "layer index is inconsistent");
  uint64_t trailer_size = index.tar_size - end_of_entries;
  std::string trailer(trailer_size, '\0');
  if (trailer_size > 64 << 20)
    return make_error(ErrorCode::kUnsupported, "layer has more than 64 MiB after its end");
  if (trailer_size > 0) {
    FileSource source(layer_fd, end_of_entries, trailer_size, "layer tar");
    DS_RETURN_IF_ERROR(read_exact(source, trailer, "layer tar trailer"));
  }
  std::string_view rest = trailer;
  while (!rest.empty()) {
    rec.clear();
    size_t zeros = 0;
    while (zeros < rest.size() && rest[zeros] == 0) ++zeros;
    if (zeros > 0) {
      rec.push_back(0x10);
      put_varint(rec, zeros);
      rest.remove_prefix(zeros);
    } else {
      size_t other = 0;
      while (other < rest.size() && rest[other] != 0) ++other;
      rec.push_back(0x11);
      put_varint(rec, other);
      rec.append(rest.substr(0, other));
      rest.remove_prefix(other);
    }
    DS_RETURN_IF_ERROR(emit(rec));
  }
  DS_RETURN_IF_ERROR(emit(std::string(1, '\x12')));
  return close_segment(index.entries.size(), true);
}

}  // namespace deltasync
