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
// A layer tar made by GNU tar (fixed mtime, owner 0) of one file
// data/NAME holding `content`, built under `root`; returns its bytes.
std::string make_layer_tar(const std::filesystem::path& root, const std::string& name,
                           const std::string& content);

}  // namespace deltasync::testing
