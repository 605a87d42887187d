// fuzz_block_delta: the block-delta decoders a layer stream's 'R', 'Z' and
// 'A' ops run on bytes from a peer (common/delta/), against a fixed 40 KiB
// basis, and the loading of a librsync signature (what a sender does with
// the signatures a receiver sends).
//
// A delta that refers outside its basis, or would write more than the
// caller's bound, must be a clean Error; no decoder may hand its sink more
// than max_output bytes, and one that succeeds has written exactly what its
// header declared (local and anchored deltas declare their size).
//
// Input: [op] [limit] delta
//   op % 4:  0 rsync_patch (+ parse_rsync_delta, which must agree),
//            1 local_delta_decode, 2 anchored_delta_decode,
//            3 RsyncSignature::load + rsync_delta of a fixed new file, and
//              the same signature as a signature round (RoundsDelta)
//   limit:   max_output = the basis size * 2 when limit is 0, else limit * 97
#include "common/delta/block_delta.h"
#include "common/delta/signature_rounds.h"
#include "common/util/varint.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "block_delta";

// Counts what a decoder writes and keeps it (the output is small: bounded).
class BoundCheckingSink final : public ByteSink {
 public:
  explicit BoundCheckingSink(uint64_t bound) : bound_(bound) {}
  Status write(std::string_view data) override {
    if (data.size() > bound_ - written_.size())
      violation(kTarget, "a decoder wrote more than its max_output of " + std::to_string(bound_));
    written_.append(data);
    return ok_status();
  }
  const std::string& written() const { return written_; }

 private:
  uint64_t bound_;
  std::string written_;
};

}  // namespace

int fuzz_block_delta(const uint8_t* data, size_t size) {
  const std::string& basis_bytes = block_delta_basis();
  InputReader in(data, size);
  const uint8_t op = in.byte() % 4;
  const uint8_t limit = in.byte();
  const uint64_t max_output = limit == 0 ? basis_bytes.size() * 2 : uint64_t{limit} * 97;
  MemoryRandomAccess basis(basis_bytes);
  MemorySource delta(in.rest());
  BoundCheckingSink out(max_output);

  switch (op) {
    case 0: {
      Status patched = rsync_patch(basis, delta, out, max_output);
      // Our reading of the format (signature rounds) must agree with
      // librsync's: a delta both accept covers exactly what was written.
      auto commands = parse_rsync_delta(in.rest());
      if (patched && commands) {
        uint64_t covered = 0;
        for (const RsyncCommand& c : *commands) covered += c.length;
        if (covered != out.written().size())
          violation(kTarget, "parse_rsync_delta covers " + std::to_string(covered) +
                                 " bytes, rsync_patch wrote " +
                                 std::to_string(out.written().size()));
      }
      break;
    }
    case 1:
    case 2: {
      Status s = op == 1 ? local_delta_decode(basis, delta, out, max_output)
                         : anchored_delta_decode(basis, delta, out, max_output);
      if (!s) break;
      // Both formats start with a 4-byte magic, a version byte and the new
      // file's size as a varint: a success wrote exactly that many bytes.
      std::string_view head = in.rest().substr(5);
      auto declared = get_varint(head);
      if (!declared) violation(kTarget, "a delta without a size header was accepted");
      if (out.written().size() != *declared)
        violation(kTarget, "a delta declaring " + std::to_string(*declared) + " bytes wrote " +
                               std::to_string(out.written().size()));
      break;
    }
    default: {
      auto signature = RsyncSignature::load(in.rest());
      if (!signature) break;
      // A loaded signature must be usable for a delta, whatever it holds.
      std::string_view new_file = std::string_view(basis_bytes).substr(1000, 8000);
      MemorySource source(new_file);
      StringSink out_delta;
      (void)rsync_delta(**signature, source, out_delta);
      // The same signature as a round: whatever a peer's signature claims,
      // the delta built from it stays inside the basis and has the new
      // file's size (a lying signature can only make the layer fail its
      // digest check).
      MemoryRandomAccess new_input(new_file);
      RoundsDelta rounds(new_input, basis_bytes.size());
      SignatureAsk ask{SignatureParams{1024, 8}, {ByteRange{0, basis_bytes.size()}}};
      if (rounds.add_round(SignatureRound{ask, std::string(in.rest())})) {
        StringSink built;
        if (!rounds.write(built)) violation(kTarget, "a rounds delta could not be written");
        MemorySource built_source(built.data());
        BoundCheckingSink patched(new_file.size());
        if (!rsync_patch(basis, built_source, patched, new_file.size()) ||
            patched.written().size() != new_file.size())
          violation(kTarget, "a rounds delta from a peer's signature does not patch");
        (void)rounds.next_ask();
      }
      break;
    }
  }
  return 0;
}

}  // namespace deltasync::fuzz
