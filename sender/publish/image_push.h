// Pushing the target image itself to a registry, so that a site with no
// usable basis can fall back to an ordinary pull of the same image.
//
// If the registry already has the tag and it resolves (for the image's
// platform) to a manifest whose config is this image's, nothing is pushed
// and that manifest is the delta's subject. Otherwise:
//   - an image read from an OCI layout (Docker's containerd store, oci:):
//     its own per-platform manifest and blobs are pushed byte for byte, so
//     the registry names it as the build host does;
//   - an image from the classic store (uncompressed layers): each layer is
//     gzip-compressed into the scratch directory (as `docker push` does)
//     and a Docker v2 manifest written for it.
// Blobs the registry holds are not uploaded (HEAD first).
//
// Thread safety: uses the borrowed client and reader from one thread.
#pragma once

#include <filesystem>
#include <string>

#include "common/image/image.h"
#include "common/registry/registry_client.h"

namespace deltasync {

struct PushedImage {
  RegistryDescriptor manifest;  // the per-platform manifest: the deltas' subject
  bool already_there = false;   // the tag already named this image
  uint64_t blobs_uploaded = 0;
  uint64_t bytes_uploaded = 0;  // blob bytes sent (0 when already there)
};

Result<PushedImage> push_image(RegistryClient& client, const std::string& repository,
                               const std::string& tag, ImageReader& image,
                               const std::filesystem::path& scratch_dir);

}  // namespace deltasync
