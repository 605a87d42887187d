// librsync signatures, deltas and patches, driven through librsync's
// streaming job API (rs_job_iter) with fixed 1 MiB input and output buffers,
// so no file is ever held whole in memory; only a loaded signature is.
//
// This is the only file that includes <librsync.h>: rs_result codes are
// turned into our Error here, once. Patching is the side that reads
// untrusted input (a delta from the network), so it checks what librsync
// does not: COPY commands must stay inside the basis, and the output may not
// exceed the caller's bound. librsync's own log lines go to spdlog at debug
// level instead of stderr; the error we return carries the same information.
#include <librsync.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "common/delta/block_delta.h"

namespace deltasync {

struct RsyncSignature::Impl {
  rs_signature_t* sig = nullptr;
  ~Impl() {
    if (sig) rs_free_sumset(sig);
  }
};

namespace {

// At least 1 KiB (rsync's floor is 700 B): below that a block's signature
// entry (4 + ~9 bytes) costs more than it saves on the files REMOTE mode
// meets. Files under 1 MiB (sqrt < 1 KiB) change everywhere when recompiled
// or upgraded, so few small blocks match anyway; where their edits are
// sparse, signature rounds refine over the unmatched basis bytes. Measured
// with ds-bench-rounds (BENCHMARKS.md, "REMOTE's signatures against
// rsync's"): 256 -> 1024 takes signatures + deltas from 4,696,118 to
// 4,495,326 B on os-update, 1,094,334 to 1,000,130 on deps-bump and
// 3,664,917 to 3,591,178 on binaries; 768 and 1536 did worse overall.
constexpr uint32_t kMinBlockLen = 1024;
constexpr uint32_t kMaxBlockLen = 64 * 1024;
constexpr uint32_t kMaxStrongLen = RS_MAX_STRONG_SUM_LENGTH;  // 32: a whole BLAKE2b-256

void log_librsync(rs_loglevel level, char const* msg) {
  spdlog::debug("librsync[{}]: {}", static_cast<int>(level), msg);
}

void quiet_librsync() {
  static std::once_flag once;
  std::call_once(once, [] { rs_trace_to(log_librsync); });
}

// The one conversion of rs_result into our errors. When the job reads
// untrusted input (a signature or delta from a peer), anything but running
// out of memory means that input is bad; otherwise it depends on the code.
Error rsync_error(rs_result result, std::string_view context, bool untrusted_input) {
  ErrorCode code = ErrorCode::kCorrupt;  // bad magic, truncated, unbelievable values
  if (untrusted_input) {
    if (result == RS_MEM_ERROR) code = ErrorCode::kInternal;
  } else
    switch (result) {
      case RS_IO_ERROR:
        code = ErrorCode::kIo;
        break;
      case RS_MEM_ERROR:
      case RS_PARAM_ERROR:
      case RS_INTERNAL_ERROR:
        code = ErrorCode::kInternal;
        break;
      case RS_UNIMPLEMENTED:
        code = ErrorCode::kUnsupported;
        break;
      default:
        break;
    }
  return Error(code, std::string(context) + ": librsync: " + rs_strerror(result));
}

struct JobDeleter {
  void operator()(rs_job_t* job) const { rs_job_free(job); }
};
using JobPtr = std::unique_ptr<rs_job_t, JobDeleter>;

// Runs `job` to completion: input from `in`, output to `out` (nullptr for
// jobs that produce none). If a callback of the job failed it leaves its
// error in `*callback_error`, which is then reported instead of librsync's
// generic code. Trailing bytes after the job's end are an error.
Status drive(rs_job_t* job, ByteSource& in, ByteSink* out, std::string_view context,
             bool untrusted_input, std::optional<Error>* callback_error = nullptr) {
  std::vector<char> inbuf(kIoChunk);
  std::vector<char> outbuf(out ? kIoChunk : 0);
  rs_buffers_t buf{};
  buf.next_in = inbuf.data();
  bool eof = false;
  while (true) {
    // Top up the input once half of it is consumed (librsync copies what it
    // needs to look ahead into its own buffer, so it never needs more).
    if (!eof && buf.avail_in <= inbuf.size() / 2) {
      if (buf.avail_in > 0 && buf.next_in != inbuf.data()) {
        std::memmove(inbuf.data(), buf.next_in, buf.avail_in);
      }
      buf.next_in = inbuf.data();
      DS_ASSIGN_OR_RETURN(size_t got, in.read(std::span(inbuf).subspan(buf.avail_in)));
      if (got == 0) eof = true;
      buf.avail_in += got;
    }
    buf.eof_in = eof ? 1 : 0;
    buf.next_out = outbuf.data();
    buf.avail_out = outbuf.size();
    size_t in_before = buf.avail_in;
    rs_result result = rs_job_iter(job, &buf);
    size_t produced = outbuf.size() - buf.avail_out;
    if (produced > 0) DS_RETURN_IF_ERROR(out->write(std::string_view(outbuf.data(), produced)));
    if (result == RS_DONE) break;
    if (result != RS_BLOCKED) {
      if (callback_error && *callback_error) return std::unexpected(std::move(**callback_error));
      return std::unexpected(rsync_error(result, context, untrusted_input));
    }
    if (eof && produced == 0 && buf.avail_in == in_before) {
      // Blocked with all input given and no output space used: it cannot go on.
      return make_error(ErrorCode::kCorrupt, std::string(context) + ": input is truncated");
    }
  }
  if (buf.avail_in > 0) {
    return make_error(ErrorCode::kCorrupt, std::string(context) + ": data after the end");
  }
  if (!eof) {
    char probe;
    DS_ASSIGN_OR_RETURN(size_t extra, in.read(std::span(&probe, 1)));
    if (extra > 0) {
      return make_error(ErrorCode::kCorrupt, std::string(context) + ": data after the end");
    }
  }
  return ok_status();
}

uint32_t ceil_log2(uint64_t n) {
  return n <= 1 ? 0 : 64 - std::countl_zero(n - 1);
}

// Copy source for patching: COPY commands read the basis through this.
struct PatchContext {
  RandomAccessInput& basis;
  std::optional<Error> error;
};

rs_result copy_from_basis(void* opaque, rs_long_t pos, size_t* len, void** buf) {
  auto* ctx = static_cast<PatchContext*>(opaque);
  uint64_t size = ctx->basis.size();
  if (pos < 0 || static_cast<uint64_t>(pos) > size || *len > size - static_cast<uint64_t>(pos)) {
    ctx->error =
        Error(ErrorCode::kCorrupt, "rsync patch: delta refers outside its basis (copy of " +
                                       std::to_string(*len) + " bytes at " + std::to_string(pos) +
                                       ", basis is " + std::to_string(size) + " bytes)");
    return RS_CORRUPT;
  }
  auto got =
      ctx->basis.read_at(static_cast<uint64_t>(pos), std::span(static_cast<char*>(*buf), *len));
  if (!got) {
    ctx->error = std::move(got.error()).with_context("rsync patch: reading basis");
    return RS_IO_ERROR;
  }
  if (*got != *len) {
    ctx->error = Error(ErrorCode::kCorrupt, "rsync patch: basis is shorter than it claims to be");
    return RS_IO_ERROR;
  }
  return RS_DONE;
}

// Passes bytes on until more than `limit` have been written.
class BoundedSink final : public ByteSink {
 public:
  BoundedSink(ByteSink& inner, uint64_t limit) : inner_(inner), limit_(limit) {}
  Status write(std::string_view data) override {
    if (data.size() > limit_ - written_) {
      return make_error(ErrorCode::kCorrupt, "rsync patch: output exceeds its limit of " +
                                                 std::to_string(limit_) + " bytes");
    }
    written_ += data.size();
    return inner_.write(data);
  }

 private:
  ByteSink& inner_;
  uint64_t limit_;
  uint64_t written_ = 0;
};

}  // namespace

SignatureParams choose_signature_params(uint64_t basis_size, uint64_t new_size) {
  // Block length ~ sqrt(basis size), the classic rsync trade-off between the
  // signature size (basis/block_len entries) and the literal bytes a change
  // costs in the delta (about one block), rounded to a multiple of 128 and
  // no smaller than kMinBlockLen (see there).
  auto root = static_cast<uint64_t>(std::sqrt(static_cast<double>(basis_size)));
  uint64_t block = (root + 64) / 128 * 128;
  block = std::clamp<uint64_t>(block, kMinBlockLen, kMaxBlockLen);
  uint64_t blocks = basis_size / block + 1;

  // Strong sum length: librsync looks up candidate blocks by the 32-bit
  // rolling sum, which is weak on structured data, so we give it no credit
  // and assume every position of the new file may be compared with every
  // basis block: new_size * blocks comparisons, each a false match with
  // probability 2^-(8 * strong_len) for a truncated BLAKE2 sum. Keeping the
  // total below 2^-40 needs 8 * strong_len >= 40 + log2(new_size) +
  // log2(blocks). A false match silently corrupts the patched file (nothing
  // else checks it at this level), hence the margin; it costs a few bytes per
  // block, e.g. 11 instead of 8 for an 80 MiB file.
  return SignatureParams{static_cast<uint32_t>(block), strong_sum_length(new_size, blocks)};
}

uint32_t strong_sum_length(uint64_t searched_bytes, uint64_t blocks) {
  uint32_t bits = 40 + ceil_log2(std::max<uint64_t>(searched_bytes, 1)) + ceil_log2(blocks);
  return std::min<uint32_t>((bits + 7) / 8, kMaxStrongLen);
}

Result<std::string> rsync_signature(ByteSource& basis, const SignatureParams& params) {
  quiet_librsync();
  if (params.block_len < kSignatureBlockMin || params.block_len > kSignatureBlockMax ||
      params.strong_len == 0 || params.strong_len > kMaxStrongLen) {
    return make_error(ErrorCode::kInvalidArgument, "rsync signature: bad parameters (block_len " +
                                                       std::to_string(params.block_len) +
                                                       ", strong_len " +
                                                       std::to_string(params.strong_len) + ")");
  }
  JobPtr job(rs_sig_begin(params.block_len, params.strong_len, RS_BLAKE2_SIG_MAGIC));
  if (!job) return make_error(ErrorCode::kInternal, "rsync signature: rs_sig_begin failed");
  StringSink out;
  DS_RETURN_IF_ERROR(drive(job.get(), basis, &out, "rsync signature", false));
  return std::move(out.data());
}

RsyncSignature::RsyncSignature(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RsyncSignature::~RsyncSignature() = default;

Result<std::unique_ptr<RsyncSignature>> RsyncSignature::load(std::string_view signature_bytes) {
  quiet_librsync();
  auto impl = std::make_unique<Impl>();
  JobPtr job(rs_loadsig_begin(&impl->sig));
  if (!job) return make_error(ErrorCode::kInternal, "rsync signature: rs_loadsig_begin failed");
  MemorySource in(signature_bytes);
  DS_RETURN_IF_ERROR(drive(job.get(), in, nullptr, "rsync signature", true));
  if (!impl->sig) return make_error(ErrorCode::kCorrupt, "rsync signature: empty");
  rs_result indexed = rs_build_hash_table(impl->sig);
  if (indexed != RS_DONE)
    return std::unexpected(rsync_error(indexed, "rsync signature: indexing", true));
  return std::unique_ptr<RsyncSignature>(new RsyncSignature(std::move(impl)));
}

Status rsync_delta(const RsyncSignature& signature, ByteSource& new_file, ByteSink& delta) {
  quiet_librsync();
  // rs_delta_begin takes a non-const pointer: it only updates lookup counters.
  JobPtr job(rs_delta_begin(signature.impl()->sig));
  if (!job) return make_error(ErrorCode::kInternal, "rsync delta: rs_delta_begin failed");
  return drive(job.get(), new_file, &delta, "rsync delta", false);
}

Status rsync_patch(RandomAccessInput& basis, ByteSource& delta, ByteSink& out,
                   uint64_t max_output) {
  quiet_librsync();
  PatchContext ctx{basis, std::nullopt};
  JobPtr job(rs_patch_begin(copy_from_basis, &ctx));
  if (!job) return make_error(ErrorCode::kInternal, "rsync patch: rs_patch_begin failed");
  BoundedSink bounded(out, max_output);
  return drive(job.get(), delta, &bounded, "rsync patch", true, &ctx.error);
}

// librsync's delta format (doc/format in its sources, prototab.h): a 4-byte
// magic, then commands. Opcode 0 ends; 1..64 are literals of that many bytes;
// 0x41..0x44 a literal whose length follows in 1, 2, 4 or 8 bytes; 0x45..0x54
// a copy whose position and length follow, big-endian, in 1/2/4/8 bytes each
// (opcode = 0x45 + 4 * width index of the position + width index of the length).
namespace {

constexpr uint8_t kOpLiteralN1 = 0x41;
constexpr uint8_t kOpCopyFirst = 0x45;
constexpr uint8_t kOpCopyLast = 0x54;

int width_index(uint64_t value) {
  return value <= 0xff ? 0 : value <= 0xffff ? 1 : value <= 0xffffffffull ? 2 : 3;
}

void put_big_endian(std::string& out, uint64_t value, int index) {
  int bytes = 1 << index;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

Result<std::vector<RsyncCommand>> parse_rsync_delta(std::string_view delta) {
  auto corrupt = [](const std::string& what) {
    return make_error(ErrorCode::kCorrupt, "rsync delta commands: " + what);
  };
  size_t at = 0;
  auto take = [&](int index) -> std::optional<uint64_t> {
    size_t bytes = size_t{1} << index;
    if (delta.size() - at < bytes) return std::nullopt;
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i) value = value << 8 | static_cast<uint8_t>(delta[at + i]);
    at += bytes;
    return value;
  };
  auto magic = take(2);
  if (!magic || *magic != RS_DELTA_MAGIC) return corrupt("not a librsync delta");
  std::vector<RsyncCommand> commands;
  while (true) {
    if (at >= delta.size()) return corrupt("truncated (no END)");
    auto op = static_cast<uint8_t>(delta[at++]);
    if (op == 0) break;
    if (op <= 64 || (op >= kOpLiteralN1 && op < kOpCopyFirst)) {
      uint64_t length = op;
      if (op > 64) {
        auto value = take(op - kOpLiteralN1);
        if (!value) return corrupt("truncated literal length");
        length = *value;
      }
      if (length > delta.size() - at) return corrupt("literal runs past the end");
      at += length;
      commands.push_back({RsyncCommand::Kind::kLiteral, 0, length});
    } else if (op <= kOpCopyLast) {
      int code = op - kOpCopyFirst;
      auto position = take(code / 4);
      auto length = position ? take(code % 4) : std::nullopt;
      if (!length) return corrupt("truncated copy");
      commands.push_back({RsyncCommand::Kind::kCopy, *position, *length});
    } else {
      return corrupt("unknown opcode " + std::to_string(op));
    }
  }
  if (at != delta.size()) return corrupt("data after END");
  return commands;
}

Status write_rsync_delta(std::span<const RsyncCommand> commands, RandomAccessInput& new_file,
                         ByteSink& delta) {
  std::string out;
  put_big_endian(out, RS_DELTA_MAGIC, 2);
  uint64_t new_position = 0;
  std::vector<char> buffer;
  for (const RsyncCommand& c : commands) {
    if (c.length == 0) continue;
    if (c.kind == RsyncCommand::Kind::kCopy) {
      int position_index = width_index(c.basis_offset);
      int length_index = width_index(c.length);
      out.push_back(static_cast<char>(kOpCopyFirst + 4 * position_index + length_index));
      put_big_endian(out, c.basis_offset, position_index);
      put_big_endian(out, c.length, length_index);
    } else {
      if (c.length <= 64) {
        out.push_back(static_cast<char>(c.length));
      } else {
        int index = width_index(c.length);
        out.push_back(static_cast<char>(kOpLiteralN1 + index));
        put_big_endian(out, c.length, index);
      }
      for (uint64_t done = 0; done < c.length;) {
        buffer.resize(std::min<uint64_t>(c.length - done, kIoChunk));
        DS_ASSIGN_OR_RETURN(size_t got, new_file.read_at(new_position + done, buffer));
        if (got != buffer.size())
          return make_error(ErrorCode::kCorrupt,
                            "rsync delta: new file is shorter than its commands");
        out.append(buffer.data(), got);
        done += got;
      }
    }
    new_position += c.length;  // copies and literals both advance the new file
    if (out.size() >= kIoChunk) {
      DS_RETURN_IF_ERROR(delta.write(out));
      out.clear();
    }
  }
  out.push_back(0);
  return delta.write(out);
}

}  // namespace deltasync
