// Settings shared by both ends of a FrameChannel (common/net/frame_channel.h):
// the TLS identity files and the limits every connection runs under.
//
// Thread safety: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

namespace deltasync {

// PEM files, as deploy/make-certs.sh makes them. `certificate` may hold the
// chain after the leaf; `private_key` must be unencrypted (a service cannot
// type a passphrase); `ca_certificates` holds the CA(s) the peer's
// certificate must chain to. All three are required: there is no plaintext
// and no unauthenticated mode.
struct TlsIdentity {
  std::filesystem::path certificate, private_key, ca_certificates;
};

struct ChannelLimits {
  // A frame larger than this is refused before allocating: send_frame()
  // refuses to send it, receive_frame() refuses the announced length.
  uint32_t max_frame_bytes = 4u << 20;
  // TCP connect + TLS handshake (the client's name resolution too).
  std::chrono::milliseconds handshake_timeout{20000};
  // Each whole frame read or write must finish within this, counted from the
  // call: a receive_frame() waits at most this long for the peer to start
  // and finish its next frame, however slowly it trickles in.
  std::chrono::milliseconds io_timeout{120000};
};

}  // namespace deltasync
