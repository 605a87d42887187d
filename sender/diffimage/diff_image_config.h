// The config of a diff image: TARGET's config (Env, Cmd, Entrypoint,
// WorkingDir, User, Labels, ExposedPorts, ..., created, architecture, os)
// with BASE's layers plus the extra one as rootfs.diff_ids, BASE's history
// plus one entry for the extra layer (so `docker history` pairs entries with
// layers), and two labels naming where it came from:
//   io.deltasync.diff-image.base   = BASE's image ID
//   io.deltasync.diff-image.target = TARGET's image ID
// Key order follows TARGET's config; the output is compact JSON, a pure
// function of its inputs (the same images give the same image ID).
//
// Thread safety: pure function.
#pragma once

#include <string>

#include "common/crypto/digest.h"
#include "common/util/result.h"

namespace deltasync {

inline constexpr const char* kDiffImageBaseLabel = "io.deltasync.diff-image.base";
inline constexpr const char* kDiffImageTargetLabel = "io.deltasync.diff-image.target";

struct DiffImageConfigInput {
  std::string base_config;    // exact bytes
  std::string target_config;  // exact bytes
  Digest new_layer;           // diff_id of the extra layer
  std::string created_by;     // the history entry's text
};

Result<std::string> make_diff_image_config(const DiffImageConfigInput& input);

}  // namespace deltasync
