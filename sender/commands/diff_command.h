// `deltasend diff OLD NEW`: the file-level comparison of two images.
#pragma once

#include <string>

#include "common/util/result.h"

namespace deltasync {

struct DiffCommandOptions {
  std::string old_image;
  std::string new_image;
  std::string engine;  // --engine value (may be empty)
  bool json = false;
  bool summary_only = false;
  bool include_directory_mtime = false;
};

// Prints the diff to stdout; returns an error for the caller to print.
Status run_diff_command(const DiffCommandOptions& options);

}  // namespace deltasync
