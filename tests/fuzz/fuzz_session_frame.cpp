// fuzz_session_frame: what a peer's frames go through before the session
// code acts on them: WireChannel::receive (parse, empty/unknown kinds,
// SessionError turned into our Error), WireChannel::expect (typed dispatch,
// Progress skipped) and DataFrameSource (a segment's data frames as one
// byte stream, ended by SegmentEnd).
//
// FrameChannel itself is a TLS connection, and its length-prefix parsing
// is inline in FrameChannel::Impl::receive_frame (common/net/frame_channel.cpp),
// not a pure function, so it is not fuzzed here; the frames come from a
// MemoryTransport instead, split from the input with the same u32
// big-endian prefix.
//
// Input: [selector] [read size] frame*
//   selector & 3: 0 receive() until the frames run out, 1 expect(kind),
//                 2 DataFrameSource to the end, 3 expect(SegmentBegin) then
//                 DataFrameSource (the receiver's order)
//   selector >> 2: the kind expect() asks for
//   read size:     DataFrameSource reads 1 << (read size % 17) bytes at a time
#include <array>

#include "common/crypto/digest.h"
#include "common/protocol/wire_channel.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "session_frame";
using Kind = wire::SessionFrame::KindCase;

constexpr std::array<Kind, 17> kKinds{
    Kind::KIND_NOT_SET,    Kind::kHello,          Kind::kInventory,
    Kind::kPlan,           Kind::kIndexChunk,     Kind::kSignatureRequest,
    Kind::kSignatureChunk, Kind::kSignaturesDone, Kind::kSegmentBegin,
    Kind::kData,           Kind::kSegmentEnd,     Kind::kCommit,
    Kind::kResult,         Kind::kError,          Kind::kProgress,
    Kind::kStatusRequest,  Kind::kStatusReply};

// Frames from memory, as a FrameChannel would deliver them: a frame over
// the limit is kProtocol, the end of the input is the peer closing.
class MemoryTransport final : public FrameTransport {
 public:
  explicit MemoryTransport(std::vector<std::string_view> frames) : frames_(std::move(frames)) {}
  Status send_frame(std::string_view) override { return ok_status(); }
  Result<std::string> receive_frame() override {
    ++calls_;
    if (next_ == frames_.size())
      return make_error(ErrorCode::kUnavailable, "fuzz peer: connection closed by peer");
    std::string_view frame = frames_[next_++];
    if (frame.size() > ChannelLimits{}.max_frame_bytes)
      return make_error(ErrorCode::kProtocol, "fuzz peer: frame over the limit");
    return std::string(frame);
  }
  const std::string& peer_address() const override { return address_; }
  size_t consumed() const { return next_; }
  // receive_frame() calls, the one that found the end included.
  size_t calls() const { return calls_; }

 private:
  std::vector<std::string_view> frames_;
  size_t next_ = 0;
  size_t calls_ = 0;
  std::string address_ = "fuzz:1";
};

// What WireChannel::receive must make of one frame, worked out directly.
struct Expected {
  bool ok = false;
  wire::SessionFrame frame;
  bool peer_error = false;  // a SessionError: its message comes back verbatim
};
Expected expected_receive(std::string_view bytes) {
  Expected e;
  if (!e.frame.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return e;
  if (e.frame.kind_case() == Kind::KIND_NOT_SET) return e;
  if (e.frame.has_error()) {
    e.peer_error = true;
    return e;
  }
  e.ok = true;
  return e;
}

// What the session code does first with the digests a peer names.
void parse_digests(const wire::SessionFrame& frame) {
  auto image = [](const wire::ImageDescription& d) {
    (void)Digest::parse(d.image_id());
    for (const auto& id : d.diff_ids()) (void)Digest::parse(id);
  };
  if (frame.has_hello()) image(frame.hello().target());
  if (frame.has_commit()) image(frame.commit().target());
  if (frame.has_inventory()) {
    for (const auto& id : frame.inventory().basis().diff_ids()) (void)Digest::parse(id);
    (void)Digest::parse(frame.inventory().basis().image_id());
  }
  if (frame.has_result()) (void)Digest::parse(frame.result().image_id());
}

void check_received(const Result<wire::SessionFrame>& got, std::string_view bytes) {
  Expected want = expected_receive(bytes);
  if (want.ok) {
    if (!got) violation(kTarget, "receive() refused a valid frame: " + got.error().message());
    if (got->SerializeAsString() != want.frame.SerializeAsString())
      violation(kTarget, "receive() returned a different message than the frame holds");
    if (got->kind_case() == Kind::KIND_NOT_SET || got->has_error())
      violation(kTarget, "receive() returned an empty frame or a SessionError as a message");
    if (frame_kind_name(got->kind_case()).empty()) violation(kTarget, "a kind without a name");
    parse_digests(*got);
    return;
  }
  if (got) violation(kTarget, "receive() accepted a frame that is malformed, empty or an error");
  if (want.peer_error) {
    if (got.error().message() != want.frame.error().message())
      violation(kTarget, "a SessionError's message did not come back as sent");
    // The code comes back if it names one of ours, else it is kProtocol.
    ErrorCode want_code = ErrorCode::kProtocol;
    for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
      if (error_code_name(static_cast<ErrorCode>(c)) == want.frame.error().code())
        want_code = static_cast<ErrorCode>(c);
    }
    if (got.error().code() != want_code)
      violation(kTarget, "a SessionError's code came back as " +
                             std::string(error_code_name(got.error().code())));
  } else if (got.error().code() != ErrorCode::kProtocol) {
    violation(kTarget, "a malformed frame gave " +
                           std::string(error_code_name(got.error().code())) + ", not kProtocol");
  }
}

void run_receive(const std::vector<std::string_view>& frames) {
  MemoryTransport transport(frames);
  WireChannel wire(transport);
  for (std::string_view bytes : frames) check_received(wire.receive(), bytes);
  auto end = wire.receive();
  if (end || end.error().code() != ErrorCode::kUnavailable)
    violation(kTarget, "receive() after the last frame did not report the closed connection");
}

void run_expect(const std::vector<std::string_view>& frames, Kind kind) {
  MemoryTransport transport(frames);
  WireChannel wire(transport);
  size_t progress_seen = 0;
  wire.on_progress([&](const wire::Progress&) { ++progress_seen; });
  auto got = wire.expect(kind, "fuzz");
  // expect() read frames [0, calls); the last call found either the frame it
  // stopped at or the end of the input.
  const size_t calls = transport.calls();
  if (calls == 0) violation(kTarget, "expect() returned without reading a frame");
  const bool hit_end = calls > frames.size();
  const size_t skipped = hit_end ? frames.size() : calls - 1;
  for (size_t i = 0; i < skipped; ++i) {
    Expected e = expected_receive(frames[i]);
    if (!e.ok || !e.frame.has_progress() || kind == Kind::kProgress)
      violation(kTarget, "expect() went past a frame that was not a Progress frame to skip");
  }
  if (progress_seen != skipped)
    violation(kTarget, "expect() skipped " + std::to_string(skipped) + " Progress frames but " +
                           "reported " + std::to_string(progress_seen));
  if (hit_end) {
    if (got || got.error().code() != ErrorCode::kUnavailable)
      violation(kTarget, "expect() at the end of the frames did not report the closed connection");
    return;
  }
  Expected e = expected_receive(frames[calls - 1]);
  if (got) {
    if (!e.ok || got->kind_case() != kind)
      violation(kTarget, "expect() returned a frame of another kind than asked for");
  } else if (e.ok && e.frame.kind_case() == kind) {
    violation(kTarget, "expect() refused the kind it asked for: " + got.error().message());
  }
}

void run_data_source(const std::vector<std::string_view>& frames, size_t first, size_t read_size) {
  MemoryTransport transport(frames);
  WireChannel wire(transport);
  if (first > 0) {
    auto begin = wire.expect(Kind::kSegmentBegin, "fuzz");
    if (!begin) return;
  }
  const size_t start = transport.consumed();
  // The stream the frames describe: data until SegmentEnd, Progress skipped.
  std::string want;
  bool want_end = false, want_error = false;
  wire::SegmentEnd want_segment_end;
  for (size_t i = start; i < frames.size(); ++i) {
    Expected e = expected_receive(frames[i]);
    if (!e.ok || !(e.frame.has_data() || e.frame.has_segment_end() || e.frame.has_progress())) {
      want_error = true;
      break;
    }
    if (e.frame.has_data()) want += e.frame.data();
    if (e.frame.has_segment_end()) {
      want_end = true;
      want_segment_end = e.frame.segment_end();
      break;
    }
  }
  if (!want_end) want_error = true;  // error frame or the peer closed

  DataFrameSource source(wire);
  std::string got;
  std::string buffer(read_size, '\0');
  Status status = ok_status();
  while (true) {
    auto n = source.read(buffer);
    if (!n) {
      status = std::unexpected(n.error());
      break;
    }
    if (*n > buffer.size()) violation(kTarget, "DataFrameSource::read returned more than asked");
    if (*n == 0) break;
    got.append(buffer.data(), *n);
  }
  if (!status) {
    if (!want_error) violation(kTarget, "DataFrameSource failed on a well-formed segment");
    if (!want.starts_with(got)) violation(kTarget, "DataFrameSource produced bytes not sent");
    return;
  }
  if (want_error) violation(kTarget, "DataFrameSource ended cleanly on a broken segment");
  if (got != want) violation(kTarget, "DataFrameSource's bytes differ from the data frames");
  if (source.bytes() != want.size()) violation(kTarget, "DataFrameSource::bytes() is wrong");
  if (!source.ended()) violation(kTarget, "DataFrameSource ended without its SegmentEnd");
  if (source.segment_end().SerializeAsString() != want_segment_end.SerializeAsString())
    violation(kTarget, "DataFrameSource kept another SegmentEnd than the peer sent");
  auto again = source.read(buffer);
  if (!again || *again != 0) violation(kTarget, "DataFrameSource read past its SegmentEnd");
}

}  // namespace

int fuzz_session_frame(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t selector = in.byte();
  const size_t read_size = size_t{1} << (in.byte() % 17);
  std::vector<std::string_view> frames = split_frames(in.rest());
  switch (selector & 3) {
    case 0:
      run_receive(frames);
      break;
    case 1:
      run_expect(frames, kKinds[(selector >> 2) % kKinds.size()]);
      break;
    case 2:
      run_data_source(frames, 0, read_size);
      break;
    default:
      run_data_source(frames, 1, read_size);
      break;
  }
  return 0;
}

}  // namespace deltasync::fuzz
