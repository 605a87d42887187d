// Session messages over a FrameChannel: one wire::SessionFrame per frame.
// Adds what both ends of a session need on top of framing: typed receive
// ("expect a Plan here", anything else is a protocol error naming both),
// errors sent to the peer as SessionError frames and turned back into our
// Error on the other side, and the two adapters that carry a layer-stream
// segment as a run of `data` frames (<= 1 MiB each) ended by SegmentEnd.
//
// Thread safety: like the FrameChannel it borrows, one thread.
#pragma once

#include <string>

#include "common/io/stream.h"
#include "common/net/frame_channel.h"
#include "proto/deltasync.pb.h"

namespace deltasync {

constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kDataChunkBytes = 1 << 20;

// Where a WireChannel's frames come from and go to when it is not a
// FrameChannel: the fuzz targets and tests (tests/fuzz/) feed frames from
// memory, since a FrameChannel is always a TLS connection.
class FrameTransport {
 public:
  virtual ~FrameTransport() = default;
  virtual Status send_frame(std::string_view payload) = 0;
  virtual Result<std::string> receive_frame() = 0;
  virtual const std::string& peer_address() const = 0;
};

class WireChannel {
 public:
  explicit WireChannel(FrameChannel& channel) : channel_(&channel) {}
  // Over another transport (tests, fuzzers); channel() must not be called.
  explicit WireChannel(FrameTransport& transport) : transport_(&transport) {}

  // Sends one frame. If the peer ended the session meanwhile and said why
  // (a SessionError before it closed), that is the error returned.
  Status send(const wire::SessionFrame& frame);
  // Next frame; a SessionError from the peer becomes our Error (its code kept).
  Result<wire::SessionFrame> receive();
  // Next frame, which must be of `kind` (Progress frames are skipped and
  // passed to the progress callback).
  Result<wire::SessionFrame> expect(wire::SessionFrame::KindCase kind, std::string_view what);
  // Tells the peer why the session ends (best effort).
  void send_error(const Error& error);
  // True once a frame could not be sent or received: the connection is then
  // closed (see FrameChannel), so there is no peer left to tell anything.
  bool failed() const { return failed_; }

  void on_progress(std::function<void(const wire::Progress&)> callback) {
    progress_ = std::move(callback);
  }
  FrameChannel& channel() { return *channel_; }

 private:
  Status send_frame(std::string_view payload);
  Result<std::string> receive_frame();
  const std::string& peer_address() const;

  FrameChannel* channel_ = nullptr;  // one of these two is set
  FrameTransport* transport_ = nullptr;
  std::function<void(const wire::Progress&)> progress_;
  bool failed_ = false;
};

// Writes a segment's bytes as `data` frames of at most kDataChunkBytes.
class DataFrameSink final : public ByteSink {
 public:
  explicit DataFrameSink(WireChannel& wire) : wire_(wire) {}
  Status write(std::string_view data) override;
  Status finish() override;  // sends what is buffered
  uint64_t bytes() const { return bytes_; }

 private:
  WireChannel& wire_;
  std::string buffer_;
  uint64_t bytes_ = 0;
};

// Reads `data` frames as one byte stream until a SegmentEnd frame, which it
// keeps (segment_end()) and reports as the end of the stream.
class DataFrameSource final : public ByteSource {
 public:
  explicit DataFrameSource(WireChannel& wire) : wire_(wire) {}
  Result<size_t> read(std::span<char> buffer) override;
  bool ended() const { return ended_; }
  const wire::SegmentEnd& segment_end() const { return end_; }
  uint64_t bytes() const { return bytes_; }

 private:
  WireChannel& wire_;
  std::string current_;
  size_t used_ = 0;
  bool ended_ = false;
  wire::SegmentEnd end_;
  uint64_t bytes_ = 0;
};

std::string_view frame_kind_name(wire::SessionFrame::KindCase kind);

}  // namespace deltasync
