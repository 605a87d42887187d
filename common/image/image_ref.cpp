// Parses the image references users type, using skopeo's transport names so
// that the same strings work in both tools:
//   docker-archive:PATH[:REF]   oci-archive:PATH[:REF]   oci:DIR[:REF]
//   docker-daemon:REF           anything else: a reference or ID in the engine
// As in skopeo, PATH ends at the first ':' after the transport, and REF picks
// one image when the archive/layout holds several. An engine image that is
// literally named like a transport ("oci:latest") is reachable as
// docker-daemon:oci:latest.
#include <algorithm>

#include "common/image/image.h"

namespace deltasync {

namespace {

constexpr std::string_view kUsage =
    "give an image in the engine (app:2.0.0, sha256:<id>) or a file: docker-archive:PATH, "
    "oci-archive:PATH, oci:DIR[:REF]";

Result<ImageRef> parse_file_ref(ImageRef ref, std::string_view rest, std::string_view transport) {
  size_t colon = rest.find(':');
  ref.location = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) ref.oci_ref = std::string(rest.substr(colon + 1));
  if (ref.location.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "image reference '" + ref.original +
                                                       "' names no path after " +
                                                       std::string(transport) + ":");
  }
  if (colon != std::string_view::npos && ref.oci_ref.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "image reference '" + ref.original + "' ends with ':' but names no image");
  }
  return ref;
}

Status check_engine_reference(const std::string& original, std::string_view name) {
  if (name.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "empty image reference; " + std::string(kUsage));
  }
  if (name.starts_with('-')) {
    return make_error(ErrorCode::kInvalidArgument,
                      "image reference '" + original + "' starts with '-'; " + std::string(kUsage));
  }
  if (name.starts_with("docker://") || name.find("://") != std::string_view::npos) {
    return make_error(ErrorCode::kUnsupported,
                      "'" + original +
                          "': deltasync does not read registries; pull the image into the "
                          "engine first, or " +
                          std::string(kUsage));
  }
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':' || c == '@';
  };
  auto bad = std::find_if_not(name.begin(), name.end(), allowed);
  if (bad != name.end() || name.size() > 4096) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'" + original + "' is not a valid image reference (" +
                          (bad != name.end() ? "character '" + std::string(1, *bad) + "'"
                                             : std::string("too long")) +
                          "); " + std::string(kUsage));
  }
  return ok_status();
}

}  // namespace

Result<ImageRef> ImageRef::parse(const std::string& text) {
  ImageRef ref;
  ref.original = text;
  std::string_view view = text;
  if (view.starts_with("docker-archive:")) {
    ref.transport = Transport::kDockerArchive;
    return parse_file_ref(std::move(ref), view.substr(15), "docker-archive");
  }
  if (view.starts_with("oci-archive:")) {
    ref.transport = Transport::kOciArchive;
    return parse_file_ref(std::move(ref), view.substr(12), "oci-archive");
  }
  if (view.starts_with("oci:")) {
    ref.transport = Transport::kOciDir;
    return parse_file_ref(std::move(ref), view.substr(4), "oci");
  }
  if (view.starts_with("docker-daemon:")) view.remove_prefix(14);
  ref.transport = Transport::kEngine;
  DS_RETURN_IF_ERROR(check_engine_reference(text, view));
  ref.location = std::string(view);
  return ref;
}

std::vector<Digest> ImageInfo::diff_ids() const {
  std::vector<Digest> out;
  out.reserve(layers.size());
  for (const auto& layer : layers) out.push_back(layer.diff_id);
  return out;
}

}  // namespace deltasync
