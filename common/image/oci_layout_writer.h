// An OCI image layout in a tar from blobs given by digest, for loading an
// image under its build host's identity (distribution.h): the documents as
// they were, the config, and every layer blob (rebuilt ones included), then
// index.json naming `target` once per tag. Each blob is hashed as it streams
// and must match its digest and size, so the engine is never handed a blob
// that is not what the target names; the engine checks the descriptors.
//
// Ownership: borrows `out` (not finished here). Not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/image/distribution.h"
#include "common/io/stream.h"

namespace deltasync {

class OciLayoutWriter {
 public:
  explicit OciLayoutWriter(ByteSink& out) : out_(out) {}
  // A small blob held in memory (a document or the config).
  Status add_blob(std::string_view bytes);
  // A blob of `size` bytes streamed from `content`; kVerifyFailed unless it
  // hashes to `digest`. A digest already written is not written again.
  Status add_blob(const Digest& digest, uint64_t size, ByteSource& content);
  // index.json naming `target` (with io.containerd.image.name per tag), the
  // oci-layout file and the end of the archive.
  Status finish(const BlobDescriptor& target, const std::vector<std::string>& tags);

 private:
  Status start();
  Status write_member(const std::string& path, std::string_view data);

  ByteSink& out_;
  std::vector<Digest> written_;
  bool started_ = false;
  bool failed_ = false;
};

}  // namespace deltasync
