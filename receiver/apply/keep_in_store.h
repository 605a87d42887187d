// After an image is loaded: keeping what was rebuilt or fetched for it in
// the site's store (its config, the link from the engine's Id, the layer
// files), so the next update is decoded against it without an engine
// export. The workspace must be on the store's file system (created under
// LayerStore::tmp_dir()): each file is synced and renamed in. A failure
// costs only the copy (the image is loaded already), so it is logged, not
// returned.
//
// Thread safety: the store may be shared; the workspace is the caller's.
#pragma once

#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/layerstream/layer_workspace.h"
#include "common/store/layer_store.h"

namespace deltasync {

void keep_in_store(LayerStore& store, LayerWorkspace& workspace, const std::vector<Digest>& layers,
                   const std::string& config, const std::string& engine_id);

}  // namespace deltasync
