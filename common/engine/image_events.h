// The engine's image events, as the Docker Engine API streams them from
// GET /events: one JSON object per line, e.g.
//   {"Type":"image","Action":"load","Actor":{"ID":"sha256:..",
//    "Attributes":{"name":"app:2"}},"time":1700000000,"timeNano":1700000000123456789}
// The service's background indexer (receiver/service/engine_indexer.h) waits
// for these to index a newly loaded image into its store before any sender
// asks for it. Pure functions on values, no I/O; the request itself is made
// by docker_api_backend.cpp.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace deltasync::engine_detail {

// The actions that bring an image (or a new name for one) into the engine.
// "import" is `docker import`; "pull", "load" and "tag" are what the issue
// names; "untag"/"delete" are left out: nothing to index.
bool is_image_arrival(std::string_view action);

struct ImageEvent {
  std::string action;  // "load"
  std::string actor;   // the image ID or name the engine gives
  int64_t time_ns = 0;
};

// One line of the event stream; nullopt for blank lines, other event types
// and lines that are not JSON objects (the stream goes on).
std::optional<ImageEvent> parse_image_event_line(std::string_view line);

// The request target (after the API prefix) for image arrivals after
// `since_ns` until `until_ns` (Unix time in ns): "/events?since=S.N&until=U.N
// &filters=<url-encoded {"type":["image"],"event":["import","load","pull","tag"]}>".
std::string image_events_target(int64_t since_ns, int64_t until_ns);

// "1700000000.000000001": the engine's seconds.nanoseconds timestamp form.
std::string engine_timestamp(int64_t unix_ns);

}  // namespace deltasync::engine_detail
