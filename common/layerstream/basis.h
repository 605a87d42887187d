// The basis: what the receiver already holds, as both ends of a layer
// stream see it. Built from the base image's layer indexes in a fixed,
// deterministic way, so that the sender and the receiver number things
// identically and a layer stream can say "basis entry 812" or "basis
// content 37" in a byte or two instead of a path or a digest.
//
//   entries   the base image's visible files (its overlay tree), numbered in
//             layer order then archive order: the order rebuilt layers list
//             files in, so consecutive references differ by +1.
//   contents  every distinct regular-file content in any base layer (even one
//             hidden by a later layer: its bytes are still in that layer's
//             tar), numbered by first appearance.
//   dictionary  the basis entries' raw tar headers, concatenated, for the
//             zstd prefix of every layer stream.
//
// Thread safety: immutable after build(); share freely between threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/crypto/digest.h"
#include "common/index/image_tree.h"

namespace deltasync {

struct BasisContent {
  Digest digest;
  uint64_t size = 0;
  uint32_t layer = 0;           // position in the base image
  uint64_t payload_offset = 0;  // in that layer's tar
  std::string path;             // the first path it was seen at (for choosing delta bases)
};

class Basis {
 public:
  // `layers` are the base image's layer indexes, lowest first. They must outlive the Basis.
  // `digest_bytes` < 32 when the indexes carry truncated digests (a basis
  // index received over the network): lookups then compare that prefix.
  static Basis build(const std::vector<const LayerIndex*>& layers,
                     size_t dictionary_limit = 32 << 20, size_t digest_bytes = 32);

  const ImageTree& tree() const { return tree_; }
  const std::vector<const FileRecord*>& entries() const { return entries_; }
  const std::vector<BasisContent>& contents() const { return contents_; }
  const std::vector<Digest>& layer_diff_ids() const { return layer_diff_ids_; }
  const std::string& dictionary() const { return dictionary_; }

  // The visible basis entry at `path`, or null.
  const FileRecord* find_path(const std::string& path) const;
  // Its number in entries(), or -1.
  int64_t entry_id(const FileRecord* record) const;
  // A content id holding these bytes, or -1.
  int64_t content_id(const Digest& digest) const;
  // Whether a basis digest and a target digest name the same content.
  bool same_content(const Digest& basis_digest, const Digest& target_digest) const;
  size_t digest_bytes() const { return digest_bytes_; }
  // Regular-file contents whose path ends in this base name.
  const std::vector<uint32_t>* contents_named(const std::string& base_name) const;

 private:
  ImageTree tree_;
  std::vector<const FileRecord*> entries_;
  std::unordered_map<const FileRecord*, uint32_t> entry_ids_;
  std::vector<BasisContent> contents_;
  std::unordered_map<Digest, uint32_t, DigestHash> content_ids_;
  std::unordered_map<std::string, std::vector<uint32_t>> contents_by_name_;
  std::vector<Digest> layer_diff_ids_;
  std::string dictionary_;
  size_t digest_bytes_ = 32;
};

std::string path_base_name(const std::string& path);

}  // namespace deltasync
