// The size of the "changed files" alternative to a diff image, for the
// summary: a tar of only TARGET's added and changed paths (content, type,
// link target; metadata-only changes left out, parent directories not
// added) followed by a ".removed" member listing the removed paths (the top
// of each removed subtree, one "/PATH" a line), gzip level 6. This is
// bench/baselines/measure.sh's changed_files_bytes (the
// docker-diff-based-layers approach), made in process: ustar headers, no
// 10 KiB record padding. It carries no image metadata and cannot be applied
// without running a container.
//
// Thread safety: none; reads the layer files with pread.
#pragma once

#include <cstdint>
#include <vector>

#include "sender/diffimage/layer_plan.h"

namespace deltasync {

struct ChangedFilesSize {
  uint64_t files = 0;      // added + changed paths in the tar
  uint64_t tar_bytes = 0;  // uncompressed
  uint64_t gzip_bytes = 0;
};

// `plan` locates every added or changed path's content (all are in the
// layer); `layer_fds` as for write_diff_layer().
Result<ChangedFilesSize> measure_changed_files(const DiffLayerPlan& plan, const ImageTree& target,
                                               const std::vector<int>& layer_fds);

}  // namespace deltasync
