#include "common/protocol/wire_channel.h"

#include <cstring>

namespace deltasync {

namespace {
ErrorCode code_from_name(const std::string& name) {
  for (ErrorCode code :
       {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kCorrupt,
        ErrorCode::kVerifyFailed, ErrorCode::kIo, ErrorCode::kNoSpace, ErrorCode::kEngine,
        ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kUnsupported, ErrorCode::kProtocol,
        ErrorCode::kCancelled, ErrorCode::kInternal}) {
    if (error_code_name(code) == name) return code;
  }
  return ErrorCode::kProtocol;
}
}  // namespace

std::string_view frame_kind_name(wire::SessionFrame::KindCase kind) {
  using K = wire::SessionFrame::KindCase;
  switch (kind) {
    case K::kHello:
      return "Hello";
    case K::kInventory:
      return "Inventory";
    case K::kPlan:
      return "Plan";
    case K::kIndexChunk:
      return "BasisIndexChunk";
    case K::kSignatureRequest:
      return "SignatureRequest";
    case K::kSignatureChunk:
      return "SignatureChunk";
    case K::kSignaturesDone:
      return "SignaturesDone";
    case K::kSegmentBegin:
      return "SegmentBegin";
    case K::kData:
      return "data";
    case K::kSegmentEnd:
      return "SegmentEnd";
    case K::kCommit:
      return "Commit";
    case K::kResult:
      return "SessionResult";
    case K::kError:
      return "SessionError";
    case K::kProgress:
      return "Progress";
    case K::kStatusRequest:
      return "StatusRequest";
    case K::kStatusReply:
      return "StatusReply";
    case K::KIND_NOT_SET:
      return "an empty frame";
  }
  return "an unknown frame";
}

Status WireChannel::send_frame(std::string_view payload) {
  Status sent = channel_ ? channel_->send_frame(payload) : transport_->send_frame(payload);
  // A frame over the limit is refused before anything is sent.
  if (!sent && sent.error().code() != ErrorCode::kInvalidArgument) failed_ = true;
  return sent;
}

Result<std::string> WireChannel::receive_frame() {
  auto received = channel_ ? channel_->receive_frame() : transport_->receive_frame();
  if (!received) failed_ = true;
  return received;
}

const std::string& WireChannel::peer_address() const {
  return channel_ ? channel_->peer_address() : transport_->peer_address();
}

Status WireChannel::send(const wire::SessionFrame& frame) {
  std::string bytes;
  if (!frame.SerializeToString(&bytes))
    return make_error(ErrorCode::kInternal, "cannot serialize a session frame");
  Status sent = send_frame(bytes);
  if (sent || !failed_ || channel_ == nullptr) return sent;
  // A peer that ended the session while we were sending said why before it
  // closed (the channel keeps its last frame): that is the error to report.
  auto last = channel_->receive_frame();
  wire::SessionFrame reply;
  if (last && reply.ParseFromString(*last) && reply.has_error())
    return make_error(code_from_name(reply.error().code()), reply.error().message());
  return sent;
}

Result<wire::SessionFrame> WireChannel::receive() {
  DS_ASSIGN_OR_RETURN(std::string bytes, receive_frame());
  wire::SessionFrame frame;
  if (!frame.ParseFromString(bytes)) {
    return make_error(ErrorCode::kProtocol,
                      "peer " + peer_address() + " sent a frame that is not a deltasync message");
  }
  if (frame.kind_case() == wire::SessionFrame::KIND_NOT_SET) {
    return make_error(ErrorCode::kProtocol,
                      "peer " + peer_address() + " sent an empty or unknown message");
  }
  if (frame.has_error()) {
    return make_error(code_from_name(frame.error().code()), frame.error().message());
  }
  return frame;
}

Result<wire::SessionFrame> WireChannel::expect(wire::SessionFrame::KindCase kind,
                                               std::string_view what) {
  while (true) {
    DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, receive());
    if (frame.has_progress() && kind != wire::SessionFrame::kProgress) {
      if (progress_) progress_(frame.progress());
      continue;
    }
    if (frame.kind_case() != kind) {
      return make_error(ErrorCode::kProtocol,
                        std::string(what) + ": expected " + std::string(frame_kind_name(kind)) +
                            ", peer sent " + std::string(frame_kind_name(frame.kind_case())));
    }
    return frame;
  }
}

void WireChannel::send_error(const Error& error) {
  wire::SessionFrame frame;
  frame.mutable_error()->set_code(std::string(error_code_name(error.code())));
  frame.mutable_error()->set_message(error.message());
  (void)send(frame);
}

Status DataFrameSink::write(std::string_view data) {
  bytes_ += data.size();
  while (!data.empty()) {
    size_t take = std::min(data.size(), kDataChunkBytes - buffer_.size());
    buffer_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (buffer_.size() == kDataChunkBytes) DS_RETURN_IF_ERROR(finish());
  }
  return ok_status();
}

Status DataFrameSink::finish() {
  if (buffer_.empty()) return ok_status();
  wire::SessionFrame frame;
  frame.set_data(std::move(buffer_));
  buffer_.clear();
  return wire_.send(frame);
}

Result<size_t> DataFrameSource::read(std::span<char> buffer) {
  while (used_ == current_.size()) {
    if (ended_) return 0;
    DS_ASSIGN_OR_RETURN(wire::SessionFrame frame, wire_.receive());
    if (frame.has_data()) {
      current_ = std::move(*frame.mutable_data());
      used_ = 0;
      bytes_ += current_.size();
    } else if (frame.has_segment_end()) {
      end_ = frame.segment_end();
      ended_ = true;
    } else if (!frame.has_progress()) {
      return make_error(ErrorCode::kProtocol,
                        "layer segment: expected data or SegmentEnd, peer sent " +
                            std::string(frame_kind_name(frame.kind_case())));
    }
  }
  size_t n = std::min(buffer.size(), current_.size() - used_);
  std::memcpy(buffer.data(), current_.data() + used_, n);
  used_ += n;
  return n;
}

}  // namespace deltasync
