// Fetching registry blobs into files that survive a cut: a blob is written
// to PATH.partial, resumed from its current length with HTTP Range on the
// next try, hashed whole when complete and renamed to PATH only if it
// matches its digest. A mismatch (a registry that changed the bytes, or a
// partial file damaged on disk) deletes the partial file and fetches once
// more from the start, so a cut costs at most the bytes after it and a bad
// resume at most one blob.
//
// Thread safety: functions; one caller per file.
#pragma once

#include <filesystem>
#include <string>

#include "common/registry/registry_client.h"

namespace deltasync {

struct BlobFetchStats {
  uint64_t bytes_fetched = 0;  // body bytes received now
  uint64_t bytes_reused = 0;   // already on disk (complete or partial) from earlier tries
  size_t blobs_fetched = 0;
  size_t blobs_reused = 0;  // complete and verified already
  size_t resumes = 0;       // tries after a cut, each from where the last one stopped
};

// Makes `path` hold blob `digest` of `size` bytes (verified). `attempts`
// bounds the tries after cuts within this call (each resumes).
Status fetch_blob_to_file(RegistryClient& client, const std::string& repository,
                          const Digest& digest, uint64_t size, const std::filesystem::path& path,
                          int attempts, BlobFetchStats& stats);

}  // namespace deltasync
