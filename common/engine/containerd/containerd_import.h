// Loading an OCI image layout (a tar stream) into containerd: a true partial
// import. Each blob member is written to the content store unless the store
// already holds it (Info first; its bytes are then only read past), and
// blobs the store holds may be missing from the archive altogether, so a
// site is sent, and writes, only what it lacks. Every blob is checked
// against its digest (by containerd on commit, and here for the documents
// held in memory). Then, for each image index.json names: every blob its
// platform manifest needs must be present, the GC labels are set, the
// layers are unpacked into the snapshotter (containerd_images::unpack), and
// the image records are created or moved (one per io.containerd.image.name /
// org.opencontainers.image.ref.name; an unnamed image is recorded under its
// config digest, as the CRI plugin names images by ID). All of it under one
// lease, so GC cannot take a blob or snapshot before an image refers to it.
// An image record is written only after its unpack succeeded, so a failed
// load leaves the names pointing where they pointed.
//
// Thread safety: one import at a time per ContainerdRpc.
#pragma once

#include <string>
#include <vector>

#include "common/engine/containerd/containerd_rpc.h"

namespace deltasync::containerd_import {

// Returns "Loaded image: NAME" lines (familiar names), as Docker's load does.
Result<std::vector<std::string>> import_oci_archive(containerd_rpc::ContainerdRpc& rpc,
                                                    ByteSource& archive);

}  // namespace deltasync::containerd_import
