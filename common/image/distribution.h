// The two identities of an image.
//
// Content identity: the config (its sha256 is the config digest, the Id on
// Docker's classic store and on Podman) and the layers' diff_ids, the
// sha256 of each uncompressed layer tar. This is what deltasync rebuilds
// and verifies bit for bit on every engine (ImageInfo in image.h).
//
// Distribution identity: how a registry or Docker's containerd image store
// names the same image: the digest of its manifest (or of the index above
// it; that digest is the engine's Id), the manifest's media types and its
// layer blobs, which are usually gzip streams whose digests differ from the
// diff_ids. A site ends with the build host's Id only if it holds those
// documents byte for byte and rebuilds every blob byte for byte: the
// documents travel verbatim (a few KiB), a compressed blob is rebuilt from
// the layer tar with a BlobRecipe the sender has proved reproduces it
// (common/image/blob_recipes.h), and the site checks every digest.
//
// Value types; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/digest.h"

namespace deltasync {

struct BlobDescriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
};

// How a layer blob is rebuilt from its uncompressed tar: Go's compress/gzip
// of the given flavor (common/codec/go_gzip.h) at `level`.
struct BlobRecipe {
  std::string flavor;
  int level = -1;
};

struct DistributionLayer {
  Digest diff_id;
  BlobDescriptor blob;
  std::optional<BlobRecipe> recipe;
  // The blob is the layer tar itself (its digest is the diff_id).
  bool uncompressed() const { return blob.digest == diff_id; }
  bool reproducible() const { return uncompressed() || recipe.has_value(); }
};

struct DistributionIdentity {
  // What the containerd store's Id names: an image index or a manifest.
  BlobDescriptor target;
  // This platform's image manifest (the target itself when it is one).
  Digest manifest_digest;
  std::string platform;  // "linux/amd64"
  // Exact bytes of the target index, the manifest and the attestation
  // manifests (with their blobs) that refer to it: all but config and layers.
  std::vector<std::string> documents;
  std::vector<DistributionLayer> layers;  // in config order

  // 1-based numbers of layers whose blob cannot be rebuilt (no recipe).
  std::vector<size_t> unreproducible_layers() const;
  bool reproducible() const { return unreproducible_layers().empty(); }
  // Bytes of the blobs that cannot be rebuilt: what shipping them would cost.
  uint64_t unreproducible_bytes() const;
  // "index sha256:ab12.. (linux/amd64)", for messages.
  std::string describe() const;
};

}  // namespace deltasync
