// The root file system an image presents: its layers' indexes applied in
// order, as an overlay file system would. A ".wh.NAME" entry deletes NAME
// (and anything below it) from the layers beneath; ".wh..wh..opq" hides
// everything beneath in its directory; an entry replacing a directory with
// a non-directory hides the directory's children. Hard links are resolved to
// the content (size, digest) of their target, since in the file system they
// are simply the same file.
//
// Thread safety: value type; build once, then read from any thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/index/layer_index.h"

namespace deltasync {

struct ImageTree {
  // path -> record (whiteout entries are consumed, never stored)
  std::map<std::string, FileRecord> files;
};

// `layers` in image order (lowest first).
ImageTree build_image_tree(const std::vector<const LayerIndex*>& layers);

}  // namespace deltasync
