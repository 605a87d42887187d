// Rsync in rounds (see signature_rounds.h for why).
//
// The delta is kept as a list of commands covering the new file: COPY of a
// basis range, or LITERAL. A round takes each literal run at least one block
// long, runs librsync's delta of that run against the round's signature, and
// splices the result in. The signature was made over the asked ranges read
// back to back, so COPY positions in it are offsets into that concatenation;
// they are mapped back to basis offsets, split where a copy crosses from one
// range into the next.
//
// The next ask signs the basis bytes that no copy uses (a change in the new
// file usually sits where the basis differs, so these are where matches are
// left to find), leaving out gaps shorter than a block. Its block length is
// the one that balances signature bytes against the literal bytes a change
// costs when the unused bytes are spread over as many places as there are
// literal runs: sqrt(unused * entry_bytes / runs), at most half the previous
// round's, at most 16 times smaller (unless it is the last round, or the
// fallback below) and at
// least 64 B. It is asked only when changes look sparse (the last round's
// copies used at least half of what it signed) and its signature would cost
// well under the literal bytes it may save. Files that differ everywhere
// (recompiled code) thus stop after the coarse round and one round at the
// one-round block size: within a fraction of a percent of one round.
#include "common/delta/signature_rounds.h"

#include <algorithm>
#include <cmath>

#include "common/codec/compression.h"
#include "common/io/stream.h"

namespace deltasync {
namespace {

constexpr uint64_t kCoarseFirstRoundFrom = 1 << 20;  // basis bytes
constexpr uint64_t kCoarseFactor = 64;
constexpr uint64_t kWeakSumBytes = 4;
// A round whose copies used at least this share of the basis bytes it signed
// found sparse changes: another, finer round is likely to pay.
constexpr double kSparseMatchShare = 0.5;
constexpr size_t kCompressionSampleBytes = 1 << 20;
constexpr uint64_t kMaxDescent = 16;
// The expected saving must be this many times the signature's cost: the
// estimate is optimistic where the stream compresses literals across files.
constexpr double kSavingMargin = 2.0;

// Reads [offset, offset + length) of a RandomAccessInput as a stream.
class RangeReader final : public ByteSource {
 public:
  RangeReader(RandomAccessInput& input, uint64_t offset, uint64_t length)
      : input_(input), at_(offset), end_(offset + length) {}
  Result<size_t> read(std::span<char> buffer) override {
    if (at_ >= end_) return size_t{0};
    auto want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), end_ - at_));
    DS_ASSIGN_OR_RETURN(size_t got, input_.read_at(at_, buffer.first(want)));
    if (got != want)
      return make_error(ErrorCode::kCorrupt, "signature rounds: input ends before its size");
    at_ += got;
    return got;
  }

 private:
  RandomAccessInput& input_;
  uint64_t at_;
  uint64_t end_;
};

// The asked ranges, one after the other.
class RangesReader final : public ByteSource {
 public:
  RangesReader(RandomAccessInput& input, const std::vector<ByteRange>& ranges)
      : input_(input), ranges_(ranges) {}
  Result<size_t> read(std::span<char> buffer) override {
    while (next_ < ranges_.size() && done_ == ranges_[next_].length) ++next_, done_ = 0;
    if (next_ >= ranges_.size()) return size_t{0};
    const ByteRange& r = ranges_[next_];
    RangeReader reader(input_, r.offset + done_, r.length - done_);
    DS_ASSIGN_OR_RETURN(size_t got, reader.read(buffer));
    done_ += got;
    return got;
  }

 private:
  RandomAccessInput& input_;
  const std::vector<ByteRange>& ranges_;
  size_t next_ = 0;
  uint64_t done_ = 0;
};

void append_merged(std::vector<RsyncCommand>& out, const RsyncCommand& c) {
  if (c.length == 0) return;
  if (!out.empty() && out.back().kind == c.kind) {
    RsyncCommand& last = out.back();
    if (c.kind == RsyncCommand::Kind::kLiteral ||
        last.basis_offset + last.length == c.basis_offset) {
      last.length += c.length;
      return;
    }
  }
  out.push_back(c);
}

uint64_t total_length(const std::vector<ByteRange>& ranges) {
  uint64_t total = 0;
  for (const ByteRange& r : ranges) total += r.length;
  return total;
}

uint32_t round_down_to(uint64_t value, uint64_t multiple) {
  return static_cast<uint32_t>(value / multiple * multiple);
}

}  // namespace

SignatureAsk whole_file_ask(uint64_t basis_size, uint64_t new_size) {
  SignatureAsk ask;
  ask.params = choose_signature_params(basis_size, new_size);
  if (basis_size > 0) ask.ranges.push_back(ByteRange{0, basis_size});
  return ask;
}

SignatureAsk first_signature_ask(uint64_t basis_size, uint64_t new_size) {
  SignatureAsk ask = whole_file_ask(basis_size, new_size);
  if (basis_size >= kCoarseFirstRoundFrom) {
    uint64_t coarse = std::min<uint64_t>(ask.params.block_len * kCoarseFactor, kSignatureBlockMax);
    ask.params.block_len = round_down_to(coarse, 128);
    ask.params.strong_len = strong_sum_length(new_size, basis_size / coarse + 1);
  }
  return ask;
}

Status check_signature_ask(const SignatureAsk& ask, uint64_t basis_size) {
  auto refuse = [](const std::string& what) {
    return make_error(ErrorCode::kProtocol, "signature ask: " + what);
  };
  if (ask.params.block_len < kSignatureBlockMin || ask.params.block_len > kSignatureBlockMax)
    return refuse("block length " + std::to_string(ask.params.block_len) + " is out of bounds");
  if (ask.params.strong_len == 0 || ask.params.strong_len > 32)
    return refuse("strong sum length " + std::to_string(ask.params.strong_len) +
                  " is out of bounds");
  if (ask.ranges.size() > kMaxSignatureRanges) return refuse("too many ranges");
  uint64_t next_free = 0;
  for (const ByteRange& r : ask.ranges) {
    if (r.length == 0 || r.offset < next_free || r.offset > basis_size ||
        r.length > basis_size - r.offset)
      return refuse("range " + std::to_string(r.offset) + "+" + std::to_string(r.length) +
                    " is empty, out of order or outside the " + std::to_string(basis_size) +
                    "-byte file");
    next_free = r.offset + r.length;
  }
  return ok_status();
}

Result<std::string> signature_of_ask(RandomAccessInput& basis, const SignatureAsk& ask) {
  DS_RETURN_IF_ERROR(check_signature_ask(ask, basis.size()));
  RangesReader reader(basis, ask.ranges);
  return rsync_signature(reader, ask.params);
}

RoundsDelta::RoundsDelta(RandomAccessInput& new_file, uint64_t basis_size)
    : new_file_(new_file), basis_size_(basis_size) {
  if (new_file.size() > 0) commands_.push_back({RsyncCommand::Kind::kLiteral, 0, new_file.size()});
}

Status RoundsDelta::add_round(const SignatureRound& round) {
  DS_RETURN_IF_ERROR(check_signature_ask(round.ask, basis_size_));
  DS_ASSIGN_OR_RETURN(auto signature, RsyncSignature::load(round.signature));
  // Where each asked range starts in the signed concatenation.
  std::vector<uint64_t> starts;
  uint64_t signed_bytes = 0;
  for (const ByteRange& r : round.ask.ranges)
    starts.push_back(signed_bytes), signed_bytes += r.length;

  auto map_copy = [&](uint64_t position, uint64_t length,
                      std::vector<RsyncCommand>& out) -> Status {
    if (position > signed_bytes || length > signed_bytes - position)
      return make_error(ErrorCode::kCorrupt, "signature rounds: copy outside the signed ranges");
    auto it = std::upper_bound(starts.begin(), starts.end(), position);
    size_t index = static_cast<size_t>(it - starts.begin()) - 1;
    while (length > 0) {
      const ByteRange& r = round.ask.ranges[index];
      uint64_t within = position - starts[index];
      uint64_t take = std::min(length, r.length - within);
      append_merged(out, {RsyncCommand::Kind::kCopy, r.offset + within, take});
      position += take, length -= take, ++index;
    }
    return ok_status();
  };

  uint64_t unused_before = total_length(unused_basis());
  uint64_t signed_total = total_length(round.ask.ranges);
  std::vector<RsyncCommand> next;
  uint64_t new_position = 0;
  for (const RsyncCommand& c : commands_) {
    if (c.kind == RsyncCommand::Kind::kCopy || c.length < round.ask.params.block_len) {
      append_merged(next, c);
      new_position += c.length;
      continue;
    }
    RangeReader run(new_file_, new_position, c.length);
    StringSink delta;
    DS_RETURN_IF_ERROR(rsync_delta(*signature, run, delta));
    DS_ASSIGN_OR_RETURN(auto found, parse_rsync_delta(delta.data()));
    uint64_t covered = 0;
    for (const RsyncCommand& f : found) {
      if (f.kind == RsyncCommand::Kind::kCopy) {
        DS_RETURN_IF_ERROR(map_copy(f.basis_offset, f.length, next));
      } else {
        append_merged(next, f);
      }
      covered += f.length;
    }
    if (covered != c.length)
      return make_error(ErrorCode::kInternal, "signature rounds: delta of a run covers " +
                                                  std::to_string(covered) + " of its " +
                                                  std::to_string(c.length) + " bytes");
    new_position += c.length;
  }
  commands_ = std::move(next);
  if (rounds_ == 0)
    coarse_first_ = round.ask.params.block_len >
                    choose_signature_params(basis_size_, new_file_.size()).block_len;
  ++rounds_;
  last_block_len_ = round.ask.params.block_len;
  uint64_t unused_after = total_length(unused_basis());
  last_match_share_ =
      signed_total == 0 || unused_after >= unused_before
          ? 0.0
          : static_cast<double>(unused_before - unused_after) / static_cast<double>(signed_total);
  return ok_status();
}

std::optional<SignatureAsk> RoundsDelta::next_ask() const {
  if (rounds_ == 0 || rounds_ >= kMaxSignatureRounds) return std::nullopt;
  uint32_t ceiling = last_block_len_ / 2;
  if (ceiling < kSignatureBlockMin) return std::nullopt;

  std::vector<uint64_t> runs;
  for (const RsyncCommand& c : commands_)
    if (c.kind == RsyncCommand::Kind::kLiteral) runs.push_back(c.length);
  std::vector<ByteRange> unused = unused_basis();
  uint64_t unused_bytes = total_length(unused);
  if (unused_bytes == 0 || runs.empty()) return std::nullopt;

  // Refining pays where the last round's copies used most of what it signed:
  // the changes are sparse at that block size. Otherwise the one exception
  // is a coarse first round that found little: the file then gets the
  // one-round block size over what is left, and no more.
  bool sparse = last_match_share_ >= kSparseMatchShare;
  if (!sparse && !(rounds_ == 1 && coarse_first_)) return std::nullopt;
  double entry_bytes = kWeakSumBytes + 8.0;
  auto ideal = static_cast<uint64_t>(std::sqrt(static_cast<double>(unused_bytes) * entry_bytes /
                                               static_cast<double>(runs.size())));
  if (!sparse) ideal = choose_signature_params(unused_bytes, new_file_.size()).block_len;
  // Descend at most 16x a round: the ideal assumes this round is the last,
  // and a coarser one first is cheaper when a finer one can follow.
  if (sparse && rounds_ + 1 < kMaxSignatureRounds)
    ideal = std::max<uint64_t>(ideal, last_block_len_ / kMaxDescent);
  uint32_t block = round_down_to(std::min<uint64_t>(ideal, ceiling), 64);
  if (block < kSignatureBlockMin) block = kSignatureBlockMin;
  if (block > ceiling) return std::nullopt;

  SignatureAsk ask;
  ask.params.block_len = block;
  uint64_t signed_bytes = 0;
  for (const ByteRange& r : unused) {
    if (r.length < block) continue;  // cannot hold a block
    ask.ranges.push_back(r);
    signed_bytes += r.length;
  }
  uint64_t searchable = 0;
  for (uint64_t run : runs)
    if (run >= block) searchable += run;
  if (ask.ranges.empty() || searchable == 0 || ask.ranges.size() > kMaxSignatureRanges)
    return std::nullopt;
  uint64_t blocks = signed_bytes / block + 1;
  ask.params.strong_len = strong_sum_length(searchable, blocks);
  uint64_t signature_bytes = blocks * (kWeakSumBytes + ask.params.strong_len);
  // What it may save: the share the last round matched, of the bytes it
  // can search, at the size they would have once compressed.
  double expected_saving = static_cast<double>(std::min(searchable, signed_bytes)) *
                           std::max(last_match_share_, 0.25) * literal_compressed_share(block);
  if (static_cast<double>(signature_bytes) * kSavingMargin > expected_saving) return std::nullopt;
  return ask;
}

std::vector<ByteRange> RoundsDelta::unused_basis() const {
  std::vector<ByteRange> used;
  for (const RsyncCommand& c : commands_)
    if (c.kind == RsyncCommand::Kind::kCopy) used.push_back({c.basis_offset, c.length});
  std::sort(used.begin(), used.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> unused;
  uint64_t at = 0;
  for (const ByteRange& u : used) {
    if (u.offset > at) unused.push_back({at, u.offset - at});
    at = std::max(at, u.offset + u.length);
  }
  if (at < basis_size_) unused.push_back({at, basis_size_ - at});
  return unused;
}

double RoundsDelta::literal_compressed_share(uint32_t min_run) const {
  // zstd -1 of up to 1 MiB of the literal runs a round would search.
  std::string sample;
  uint64_t new_position = 0;
  for (const RsyncCommand& c : commands_) {
    if (c.kind == RsyncCommand::Kind::kLiteral && c.length >= min_run &&
        sample.size() < kCompressionSampleBytes) {
      size_t take = static_cast<size_t>(
          std::min<uint64_t>(c.length, kCompressionSampleBytes - sample.size()));
      size_t at = sample.size();
      sample.resize(at + take);
      auto got = new_file_.read_at(new_position, std::span(sample).subspan(at));
      if (!got || *got != take) return 1.0;
    }
    new_position += c.length;
  }
  if (sample.empty()) return 1.0;
  auto compressed = zstd_compress(sample, 1);
  if (!compressed) return 1.0;
  return std::min(1.0,
                  static_cast<double>(compressed->size()) / static_cast<double>(sample.size()));
}

Status RoundsDelta::write(ByteSink& delta) const {
  return write_rsync_delta(commands_, new_file_, delta);
}

}  // namespace deltasync
