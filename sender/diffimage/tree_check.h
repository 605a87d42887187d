// The check a diff image must pass before it is loaded: the overlay of its
// layers presents exactly TARGET's root file system. Same paths; for each,
// same kind, content (size and sha256), link target, device numbers, mode,
// owner, mtime (directories' too) and xattrs; and the same hard-link groups.
//
// Thread safety: pure function over value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/index/image_tree.h"
#include "common/util/result.h"

namespace deltasync {

struct TreeCheck {
  uint64_t paths = 0;                    // paths compared
  std::vector<std::string> differences;  // empty when equal; "PATH: what" (first few)
  uint64_t difference_count = 0;
};

TreeCheck compare_trees(const ImageTree& expected,
                        const std::vector<const LayerIndex*>& expected_layers,
                        const ImageTree& actual,
                        const std::vector<const LayerIndex*>& actual_layers);

}  // namespace deltasync
