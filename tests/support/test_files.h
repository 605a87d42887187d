// Test helpers for making files: write one (creating its directories) and
// deterministic contents from a seed.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace deltasync::testing {

// Writes `content` to `path`, creating parent directories; a failed write
// fails the calling test.
void write_file(const std::filesystem::path& path, std::string_view content);
// `n` pseudo-random bytes from `seed` (same seed, same bytes).
std::string random_bytes(size_t n, unsigned seed);
// `n` pseudo-random lower-case letters from `seed`.
std::string random_text(size_t n, unsigned seed);

}  // namespace deltasync::testing
