// See image_events.h. The filter is sent so the engine streams only image
// arrivals; the parser checks the type and action anyway, since Podman's
// compatible service has filtered differently across releases.
#include "common/engine/image_events.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/engine/engine_detail.h"

namespace deltasync::engine_detail {

namespace {
constexpr const char* kArrivals[] = {"import", "load", "pull", "tag"};
}  // namespace

bool is_image_arrival(std::string_view action) {
  for (const char* a : kArrivals)
    if (action == a) return true;
  return false;
}

std::optional<ImageEvent> parse_image_event_line(std::string_view line) {
  if (line.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  auto text = [](const nlohmann::json& object, const char* key) -> std::string {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  // Docker 1.22+ sends Type/Action; older ones (and some Podman releases)
  // only "status" with the action.
  std::string type = text(json, "Type");
  if (!type.empty() && type != "image") return std::nullopt;
  ImageEvent event;
  event.action = text(json, "Action");
  if (event.action.empty()) event.action = text(json, "status");
  if (!is_image_arrival(event.action)) return std::nullopt;
  if (auto actor = json.find("Actor"); actor != json.end() && actor->is_object())
    event.actor = text(*actor, "ID");
  if (event.actor.empty()) event.actor = text(json, "id");
  if (auto nano = json.find("timeNano"); nano != json.end() && nano->is_number_integer()) {
    event.time_ns = nano->get<int64_t>();
  } else if (auto seconds = json.find("time");
             seconds != json.end() && seconds->is_number_integer()) {
    event.time_ns = seconds->get<int64_t>() * 1'000'000'000;
  }
  return event;
}

std::string engine_timestamp(int64_t unix_ns) {
  if (unix_ns < 0) unix_ns = 0;
  char text[40];
  std::snprintf(text, sizeof text, "%lld.%09lld", static_cast<long long>(unix_ns / 1'000'000'000),
                static_cast<long long>(unix_ns % 1'000'000'000));
  return text;
}

std::string image_events_target(int64_t since_ns, int64_t until_ns) {
  nlohmann::json filters;
  filters["type"] = {"image"};
  filters["event"] = nlohmann::json::array();
  for (const char* a : kArrivals) filters["event"].push_back(a);
  return "/events?since=" + engine_timestamp(since_ns) + "&until=" + engine_timestamp(until_ns) +
         "&filters=" + url_encode_query(filters.dump());
}

}  // namespace deltasync::engine_detail
