// Images in containerd's stores as deltasync needs them: a name or an ID
// resolved to this platform's manifest, config and layers (read from the
// content store, each document checked against its digest), and unpacking
// those layers into the snapshotter the way containerd's own unpacker does,
// so that the kubelet finds the image ready (no pull):
//   for each layer, the snapshot named by its chain ID (OCI image-spec:
//   chain(1) = diff_id(1), chain(n) = sha256(chain(n-1) + " " + diff_id(n)))
//   is prepared on its parent, the blob applied by the diff service (which
//   reports the uncompressed digest: it must be the diff_id), and committed;
//   present snapshots are kept. Then the GC labels that keep the snapshots
//   and blobs alive once the lease ends: containerd.io/gc.ref.snapshot.<sn>
//   on the config, containerd.io/gc.ref.content.* on the documents,
//   containerd.io/uncompressed on each layer blob.
//
// Thread safety: free functions using one ContainerdRpc; one at a time.
#pragma once

#include <string>
#include <vector>

#include "common/engine/containerd/containerd_rpc.h"

namespace deltasync::containerd_images {

struct ResolvedImage {
  containerd_rpc::Descriptor target;    // what the image record names
  containerd_rpc::Descriptor manifest;  // this platform's manifest
  std::string index_bytes;              // the target index, if it is one
  std::string manifest_bytes;
  containerd_rpc::Descriptor config;
  std::string config_bytes;
  std::vector<containerd_rpc::Descriptor> layers;
  std::vector<std::string> diff_ids;
  std::string os;
  std::string architecture;
  std::vector<std::string> names;  // every image record with this target
};

// Reads target down to `platform`'s manifest ("os/arch[/variant]"; empty:
// linux and this host's architecture), its config and layer list.
Result<ResolvedImage> resolve(containerd_rpc::ContainerdRpc& rpc,
                              const containerd_rpc::Descriptor& target,
                              const std::string& platform);

// Finds the image `name` names: a reference ("app:1" is read as
// "docker.io/library/app:1"), a target digest, or a config digest (the
// kubelet's image ID); kNotFound names it.
Result<ResolvedImage> find(containerd_rpc::ContainerdRpc& rpc, const std::string& name,
                           const std::string& platform);

// "sha256:..." chain IDs of a diff_id list.
std::vector<std::string> chain_ids(const std::vector<std::string>& diff_ids);

// Unpacks `image`'s layers into the address's snapshotter (see above).
// Call with a lease held.
Status unpack(containerd_rpc::ContainerdRpc& rpc, const ResolvedImage& image);

// The GC reference labels of a document: a manifest's config and layers,
// an index's manifests.
Status label_references(containerd_rpc::ContainerdRpc& rpc, const ResolvedImage& image);

}  // namespace deltasync::containerd_images
