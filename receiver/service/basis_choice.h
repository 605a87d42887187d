// Which engine image a network session codes the target against.
//
// The receiver chooses, because only it knows what its engine holds: an
// image of the same repository as one of the target's tags first (the
// previous version of the same app, which shares the most files), then the
// image sharing the most leading layers with the target. It also reports
// whether the engine already holds the target, and how many of the target's
// leading layers it holds (those are never sent).
//
// Thread safety: uses the borrowed EngineClient from the calling thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/digest.h"
#include "common/engine/engine_client.h"

namespace deltasync {

struct BasisChoice {
  bool has_image = false;        // the engine holds the target image ID
  size_t engine_layers = 0;      // leading target layers held by some engine image
  std::string engine_id;         // chosen basis, the engine's ID to export ("" when none)
  std::string image_id;          // its config digest; "" until known (containerd store)
  std::string reference;         // one of its tags, for messages
  std::vector<Digest> chain;     // its diff_ids
  std::string target_engine_id;  // has_image: the engine's ID of the target
};

// What an engine image ID is as a config digest: itself on the classic store
// and Podman; on the containerd store what the site's store recorded, if any.
using ConfigDigestOf = std::function<std::optional<std::string>(const std::string& engine_id)>;

Result<BasisChoice> choose_basis(EngineClient& engine, const std::vector<Digest>& target_chain,
                                 const std::string& target_image_id,
                                 const std::vector<std::string>& target_tags,
                                 const ConfigDigestOf& config_digest_of,
                                 bool every_layer_in_archive);
// every_layer_in_archive (containerd store): the engine's load needs every
// layer in the archive, so engine_layers counts only the chosen basis's
// leading layers, which the session keeps in its store.

// "registry:5000/app:2.0.0" -> "registry:5000/app".
std::string repository_of(const std::string& reference);

}  // namespace deltasync
