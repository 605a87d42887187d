// Test hooks for common/net: misbehaviours the real interface does not
// offer, for tests/unit/net_channel_test.cpp only. Never use them in the
// binaries.
//
// Thread safety: as FrameChannel (owning thread only).
#pragma once

#include <memory>
#include <string_view>

#include "common/net/frame_channel.h"

namespace deltasync::net_testing {

// connect_channel() without presenting a client certificate
// (identity.certificate and private_key are not read).
Result<std::unique_ptr<FrameChannel>> connect_without_certificate(const ClientOptions& options);

// Writes `bytes` inside the TLS stream without a length prefix (e.g. a bare
// prefix announcing a huge frame, or one byte of a frame at a time), within
// io_timeout.
Status write_raw(FrameChannel& channel, std::string_view bytes);

}  // namespace deltasync::net_testing
