// Rsync in rounds: a delta against a basis the encoder knows only through
// signatures, asked for coarse first and then finer only where the coarse
// blocks did not match.
//
// One round of rsync pays for the whole basis at one block size: small
// blocks make a large signature, large blocks make every change cost a large
// literal. With rounds, the first signature uses large blocks (cheap, and
// enough to find the unchanged bulk of a file), and each later round signs
// only the basis bytes that no copy uses yet, with blocks sized for the
// changes that are left. A file with a few small edits then costs a few KB
// instead of one sqrt-sized block per edit plus a full signature.
//
// The result is an ordinary librsync delta against the whole basis (COPY
// positions are basis offsets), so the receiver patches it as any other.
//
// Thread safety: RoundsDelta belongs to one thread while rounds are added;
// after that, write() (const) may be called from another thread. The free
// functions are reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/delta/block_delta.h"

namespace deltasync {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// What to sign of one basis file in one round: `ranges` read one after the
// other as if they were one file, in blocks of `params.block_len`.
struct SignatureAsk {
  SignatureParams params;
  std::vector<ByteRange> ranges;  // ascending, disjoint, non-empty
};

// An ask and the signature that answered it.
struct SignatureRound {
  SignatureAsk ask;
  std::string signature;  // librsync bytes
};

// At most this many rounds per basis file (each is a round trip per layer).
constexpr int kMaxSignatureRounds = 4;
// Asks are refused beyond this many ranges (the request must fit a frame).
constexpr size_t kMaxSignatureRanges = 1 << 16;

// The whole basis at the one-round block size (choose_signature_params):
// what one round of rsync asks, and what a receiver without rounds signs.
SignatureAsk whole_file_ask(uint64_t basis_size, uint64_t new_size);

// The first round's ask: the whole basis; for basis files of 1 MiB or more,
// blocks 64 times the one-round choice (choose_signature_params), since
// later rounds refine.
SignatureAsk first_signature_ask(uint64_t basis_size, uint64_t new_size);

// Checks an ask from a peer against a basis of `basis_size` bytes
// (kProtocol: ranges out of order, overlapping, empty or outside; block or
// strong-sum length out of bounds; too many ranges).
Status check_signature_ask(const SignatureAsk& ask, uint64_t basis_size);

// The librsync signature of the asked ranges of `basis`.
Result<std::string> signature_of_ask(RandomAccessInput& basis, const SignatureAsk& ask);

// Builds a new file's delta round by round. `new_file` is borrowed and must
// outlive this.
class RoundsDelta {
 public:
  RoundsDelta(RandomAccessInput& new_file, uint64_t basis_size);

  // Matches the new-file bytes that are still literal against `round`.
  Status add_round(const SignatureRound& round);

  // The next round worth asking for, or nullopt: no basis bytes left
  // unused, no literal run long enough, or its signature would cost more
  // than an eighth of the literal bytes it could replace.
  std::optional<SignatureAsk> next_ask() const;

  // Writes the delta (librsync format, against the whole basis).
  Status write(ByteSink& delta) const;

  int rounds() const { return rounds_; }

 private:
  // Basis ranges no copy uses, ascending.
  std::vector<ByteRange> unused_basis() const;
  // Compressed size / size of the literal runs of at least `min_run` bytes.
  double literal_compressed_share(uint32_t min_run) const;

  RandomAccessInput& new_file_;
  uint64_t basis_size_;
  std::vector<RsyncCommand> commands_;  // covers the whole new file
  int rounds_ = 0;
  uint32_t last_block_len_ = 0;
  double last_match_share_ = 0;  // of the basis bytes the last round signed, the share copies use
  bool coarse_first_ = false;    // the first round used blocks above the one-round choice
};

}  // namespace deltasync
