// Go's gzip, for rebuilding compressed layer blobs byte for byte.
//
// An image's distribution identity (its manifest or index digest, which is
// the Id on Docker's containerd image store) names compressed blobs, and
// those are written by Go's compress/gzip (BuildKit, Docker's push). The
// deflate output of Go differs between Go releases, so each release is a
// separate compressor: a deltasync-gzip helper binary built with that
// toolchain (common/codec/gzip-helper/main.go, cmake/GoGzipHelpers.cmake).
// A helper is named on the wire by its *flavor*: the first 16 hex digits of
// the sha256 of its output on a fixed probe input, so two Go releases whose
// deflate agrees count as one, and a site needs the flavor, not the exact
// release. Whoever uses a rebuilt blob still checks its digest.
//
// Helpers are found in $DELTASYNC_HELPER_DIR, else <executable dir>/../
// libexec/deltasync (the build tree and /usr/bin -> /usr/libexec both
// match). Each runs as a child process fed through pipes.
//
// Thread safety: GoGzip::installed() is initialised once (thread-safe) and
// then read-only; compress() may run concurrently from several threads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/io/stream.h"

namespace deltasync {

class GoGzip {
 public:
  struct Helper {
    std::filesystem::path path;
    std::string go_version;  // "go1.27.3"
    std::string flavor;      // 16 hex digits (see above)
  };

  // The helpers of this installation (those that run and answer the probe).
  static const GoGzip& installed();
  // Helpers in `dir` (tests).
  static GoGzip in_directory(const std::filesystem::path& dir);

  // One helper per flavor, in discovery order.
  const std::vector<Helper>& helpers() const { return helpers_; }
  const Helper* find_flavor(std::string_view flavor) const;
  // "go1.19.8, go1.27.3" or "none", for messages.
  std::string describe() const;

  // Compresses `plain` (to its end) with `helper` at compress/gzip `level`
  // (-1 = default), writing the gzip stream to `out` (not finished here).
  static Status compress(const Helper& helper, int level, ByteSource& plain, ByteSink& out);

 private:
  std::vector<Helper> helpers_;
};

}  // namespace deltasync
