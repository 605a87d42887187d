// One network session on the receiver, from Hello to SessionResult (the
// order is in docs/protocol.md). Runs on the session's own thread; blocking
// work that can outlast the sender's read deadline (exporting the basis from
// the engine, loading the image) runs on a helper thread while the session
// sends Progress heartbeats.
//
// Nothing reaches the engine until every layer has been rebuilt and verified
// against its diff_id and the config against the image ID. Rebuilt segments
// are synced and checkpointed in the store as they complete, so a cut
// session resumes at the first unfinished segment.
#pragma once

#include "common/net/frame_channel.h"
#include "receiver/service/service_state.h"

namespace deltasync {

void serve_session(FrameChannel& channel, ServiceState& state);

}  // namespace deltasync
