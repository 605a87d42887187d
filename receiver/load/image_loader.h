// Loading a rebuilt image into the engine, shared by `deltarecvd apply` and
// the network sessions: a docker-archive of only the layers the engine lacks
// is streamed through a pipe into POST /images/load (nothing is staged on
// disk), then the engine must report the image ID, and the tags are applied.
//
// Thread safety: uses the borrowed EngineClient from the calling thread only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"

namespace deltasync {

// rootfs.diff_ids of an image config (kCorrupt if the config is not valid).
Result<std::vector<Digest>> config_diff_ids(const std::string& config);

struct LayerFileRef {
  int fd = -1;  // borrowed; read with pread from 0
  uint64_t size = 0;
};

// `chain` is the config's layer list; the first `engine_layers` are already
// in the engine and are only listed; the rest come from `layer_file`.
Status load_image_into_engine(EngineClient& engine, const std::string& config,
                              const std::vector<Digest>& chain, size_t engine_layers,
                              const std::function<Result<LayerFileRef>(const Digest&)>& layer_file,
                              const std::vector<std::string>& tags);

}  // namespace deltasync
