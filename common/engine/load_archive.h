// Streams an image archive into an engine's POST /images/load as it is
// written: `produce` writes the docker-archive on a thread into one end of a
// pipe while the engine client uploads from the other, so nothing is staged
// on disk. If `produce` fails, the pipe is closed early and the engine sees
// a truncated archive (it loads nothing); that error is returned.
//
// Thread safety: `engine` must not be used by anything else during the call.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"

namespace deltasync {

// Returns the engine's progress messages ("Loaded image: app:2.0.0").
Result<std::vector<std::string>> load_archive_through_pipe(
    EngineClient& engine, const std::function<Status(ByteSink&)>& produce);

}  // namespace deltasync
