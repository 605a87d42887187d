// Finds, in the site's engine, an image that holds a given chain of layers
// (the basis a bundle or a sender assumes). When none does, the error names
// the layers that are missing, measured against the engine image that comes
// closest, and says what to do.
#pragma once

#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"

namespace deltasync {

struct BaseImageMatch {
  std::string image_id;              // the engine image to export
  std::vector<Digest> engine_chain;  // its diff_ids
};

// `chain` empty: returns an empty match (no basis needed).
// An image whose ID is `preferred_id` is chosen when it qualifies.
Result<BaseImageMatch> find_image_with_layers(EngineClient& engine,
                                              const std::vector<Digest>& chain,
                                              const std::string& base_hint,
                                              const std::string& preferred_id = "");

// Number of leading layers of `target` that equal `engine_chain`'s.
size_t common_prefix(const std::vector<Digest>& a, const std::vector<Digest>& b);

}  // namespace deltasync
