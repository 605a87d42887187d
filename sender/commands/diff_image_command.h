// `deltasend diff-image BASE TARGET -t TAG`: builds, in the local engine, an
// image made of BASE's layers plus one layer holding only what differs
// (added and changed files, whiteouts for deletions), whose file system is
// TARGET's, with TARGET's config. See docs/diff-image.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/util/result.h"
#include "sender/diff/image_diff.h"
#include "sender/diffimage/changed_files_size.h"
#include "sender/diffimage/layer_plan.h"

namespace deltasync {

struct DiffImageCommandOptions {
  std::string base_image;         // app:1.0.0, docker-archive:PATH, ...
  std::string target_image;       // app:2.0.0, ...
  std::vector<std::string> tags;  // at least one: "repo:tag"
  std::string engine;             // --engine value (may be empty)
  bool json = false;
  bool quiet = false;
};

struct DiffImageResult {
  std::string image_id;  // "sha256:<hex>" of the loaded diff image
  // The engine's Id of it: image_id, or on the containerd store the digest
  // of the manifest written for it.
  std::string engine_image_id;
  std::vector<std::string> tags;
  std::string engine;  // address it was loaded into
  std::string base_id, target_id;
  size_t base_layers = 0, target_layers = 0;
  size_t base_layers_loaded = 0;  // base layers the engine lacked and was sent
  Digest layer_diff_id;
  uint64_t layer_tar_bytes = 0;
  uint64_t layer_gzip_bytes = 0;  // gzip -6 of the extra layer
  uint64_t layer_entries = 0;
  DiffLayerPlan::Counts layer_counts;
  DiffTotals files;  // BASE -> TARGET, directory mtimes included
  ChangedFilesSize changed_files;
  size_t target_missing_layers = 0;   // TARGET's layers BASE lacks
  uint64_t target_missing_bytes = 0;  // their uncompressed tar bytes
  uint64_t paths_checked = 0;
  double seconds = 0;
};

// Does the whole job (no printing): reads both images, plans and writes the
// layer, checks the result's file system against TARGET's (fails, loading
// nothing, if they differ), loads the image, checks its ID and layers in the
// engine and tags it.
Result<DiffImageResult> make_diff_image(const DiffImageCommandOptions& options);

nlohmann::json diff_image_result_to_json(const DiffImageResult& result);
std::string format_diff_image_result(const DiffImageResult& result,
                                     const DiffImageCommandOptions& options);

// make_diff_image(), then prints the summary (text or --json) to stdout.
Status run_diff_image_command(const DiffImageCommandOptions& options);

}  // namespace deltasync
