// What the one extra layer of a diff image holds (see layer_plan.cpp for the
// algorithm): the entries that turn BASE's root file system into TARGET's
// when the layer is applied on top of BASE's layers, in the order they are
// written. Each entry names where its header and payload come from in
// TARGET's layer tars, so the layer can be written by copying bytes.
//
// Thread safety: pure function over value types.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/index/image_tree.h"
#include "sender/diff/image_diff.h"

namespace deltasync {

struct PlannedEntry {
  enum class Op : uint8_t {
    kCopy,      // TARGET's header bytes as they are
    kRetype,    // TARGET's header as a regular file / a hard link to link_target
    kWhiteout,  // ".wh.NAME": NAME is gone
    kOpaque,    // ".wh..wh..opq": nothing of the directory below this layer shows
  };
  // Why a path is in the layer (for the summary).
  enum class Why : uint8_t { kAdded, kChanged, kMetadata, kParent, kLinkGroup, kDeletion };

  Op op = Op::kCopy;
  Why why = Why::kAdded;
  std::string path;  // normalized; for whiteouts the ".wh." entry's path
  // kCopy / kRetype: the header's entry in TARGET's layer `layer`.
  uint32_t layer = 0;
  uint64_t entry = 0;
  // '1' for a hard link (to link_target), else '0'; kRetype writes this type.
  char type = '0';
  std::string link_target;
  // Payload: `payload_size` bytes at `payload_offset` of TARGET's layer
  // `payload_layer` (the content entry, for a hard link made regular).
  uint32_t payload_layer = 0;
  uint64_t payload_offset = 0;
  uint64_t payload_size = 0;

  bool is_hardlink() const;
};

struct DiffLayerPlan {
  std::vector<PlannedEntry> entries;  // in write order
  ImageDiff diff;                     // BASE -> TARGET, directory mtimes included
  struct Counts {
    uint64_t added = 0, changed = 0, metadata = 0;  // paths in the layer, by why
    uint64_t parents = 0, link_members = 0;
    uint64_t whiteouts = 0, opaque_dirs = 0;
    uint64_t payload_bytes = 0;
  } counts;

  // TARGET's layers that payloads are read from.
  std::set<uint32_t> payload_layers() const;
};

// `base` / `target` are the trees of BASE and TARGET built from
// `base_layers` / `target_layers`.
DiffLayerPlan plan_diff_layer(const ImageTree& base,
                              const std::vector<const LayerIndex*>& base_layers,
                              const ImageTree& target,
                              const std::vector<const LayerIndex*>& target_layers);

// Path order within each group of entries (small, large files, hard links):
// a directory's entries right after it (its opaque marker first), names in
// byte order within a directory.
bool layer_order_less(std::string_view a, std::string_view b);

}  // namespace deltasync
