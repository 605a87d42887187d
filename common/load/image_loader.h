// Loading a rebuilt image into the engine, shared by `deltarecvd apply` and
// the network sessions. The archive is streamed through a pipe into POST
// /images/load (nothing is staged on disk); its form depends on the engine's
// image store (EngineClient::info):
//   classic store, Podman: a docker-archive of only the layers the engine
//     lacks (placeholders for the rest); afterwards the engine must hold the
//     config digest as an image ID with the config's diff_ids.
//   containerd image store, with the build host's distribution identity
//     (distribution.h) whose every blob can be rebuilt here: an OCI layout
//     of its own documents and blobs (compressed ones rebuilt from the
//     layer tars by their recipe and checked against their digests);
//     afterwards the engine must hold the build host's Id (index or
//     manifest digest) with the config's diff_ids: the same image, every
//     digest checked. Otherwise, or when that fails:
//   containerd image store: an OCI layout with every layer and a manifest we
//     write (OciArchiveWriter), since that store needs every blob the
//     manifest names; afterwards the engine must hold an image whose ID is
//     that manifest's digest (which names the config by digest, and the
//     store checks every blob against its digest on import) with the
//     config's diff_ids. A failed unpack reported inside the load stream is
//     an error.
// Then the tags are applied to the verified image.
//
// Thread safety: uses the borrowed EngineClient from the calling thread only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <filesystem>
#include <optional>
#include "common/crypto/digest.h"

#include "common/engine/engine_client.h"
#include "common/image/distribution.h"

namespace deltasync {

// rootfs.diff_ids of an image config (kCorrupt if the config is not valid).
Result<std::vector<Digest>> config_diff_ids(const std::string& config);

struct LayerFileRef {
  int fd = -1;  // borrowed; read with pread from 0
  uint64_t size = 0;
};

struct LoadedImage {
  Digest config_digest;  // the content identity (always checked)
  // The engine's Id: the config digest, or on the containerd store the
  // digest of the manifest we wrote.
  std::string engine_id;
  std::string store;  // EngineInfo::describe()
  // The engine's Id is the build host's (its distribution identity was
  // rebuilt and every digest checked).
  bool same_as_source = false;
  // When a distribution identity was given but not kept: why (which layer
  // could not be rebuilt, or what failed), for the user and the log.
  std::string identity_note;
  bool engine_id_is_manifest() const { return engine_id != config_digest.str(); }
};

struct LoadOptions {
  // The build host's distribution identity, if the sender had one.
  const DistributionIdentity* distribution = nullptr;
  // Where rebuilt compressed blobs are staged (they need a size before they
  // enter the archive); the store's or the workspace's scratch directory.
  std::filesystem::path scratch_dir;
};

// `chain` is the config's layer list; the first `engine_layers` are already
// in the engine; on the classic store they are only listed, on the
// containerd store they are read from `layer_file` like the rest.
Result<LoadedImage> load_image_into_engine(
    EngineClient& engine, const std::string& config, const std::vector<Digest>& chain,
    size_t engine_layers, const std::function<Result<LayerFileRef>(const Digest&)>& layer_file,
    const std::vector<std::string>& tags, const LoadOptions& options = {});

}  // namespace deltasync
