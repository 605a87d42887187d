// Test support: `deltasend --json` prints newline-delimited JSON events, the
// last of them the result object. These parse such output.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace deltasync::testing {

// Every non-empty line parsed; a line that is not JSON becomes a discarded
// value (is_discarded()), so callers can assert on it.
inline std::vector<nlohmann::json> json_lines(const std::string& output) {
  std::vector<nlohmann::json> events;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    events.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return events;
}

// The last line's object (the result); discarded when there is none.
inline nlohmann::json last_json_line(const std::string& output) {
  auto events = json_lines(output);
  if (events.empty()) return nlohmann::json::parse("", nullptr, false);
  return events.back();
}

}  // namespace deltasync::testing
