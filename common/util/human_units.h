// Byte counts and durations for people: "1.5 MiB", "512 B", "1:05".
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace deltasync {

// Binary units with one decimal: "512 B", "1.5 KiB", "12.0 MiB".
std::string human_bytes(uint64_t bytes);
// "0:07", "1:05", "2:03:00"; "?" for a negative or absurd number of seconds.
std::string human_duration(double seconds);

}  // namespace deltasync
