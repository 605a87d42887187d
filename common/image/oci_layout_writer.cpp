#include "common/image/oci_layout_writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "common/engine/engine_detail.h"
#include "common/tar/tar_entry.h"

namespace deltasync {

Status OciLayoutWriter::write_member(const std::string& path, std::string_view data) {
  TarHeaderSpec spec;
  spec.path = path;
  spec.size = data.size();
  DS_RETURN_IF_ERROR(out_.write(build_tar_header(spec)));
  DS_RETURN_IF_ERROR(out_.write(data));
  return out_.write(std::string(tar_padding(data.size()), '\0'));
}

Status OciLayoutWriter::start() {
  if (failed_) return make_error(ErrorCode::kInternal, "OCI layout writer used after it failed");
  if (started_) return ok_status();
  for (const char* dir : {"blobs/", "blobs/sha256/"}) {
    TarHeaderSpec spec;
    spec.path = dir;
    spec.type = '5';
    spec.mode = 0755;
    DS_RETURN_IF_ERROR(out_.write(build_tar_header(spec)));
  }
  started_ = true;
  return ok_status();
}

Status OciLayoutWriter::add_blob(std::string_view bytes) {
  MemorySource source(bytes);
  return add_blob(Digest::of(bytes), bytes.size(), source);
}

Status OciLayoutWriter::add_blob(const Digest& digest, uint64_t size, ByteSource& content) {
  DS_RETURN_IF_ERROR(start());
  if (std::find(written_.begin(), written_.end(), digest) != written_.end()) return ok_status();
  std::string what = "OCI layout writer: blob " + digest.str();
  failed_ = true;
  TarHeaderSpec spec;
  spec.path = "blobs/sha256/" + digest.hex();
  spec.size = size;
  DS_RETURN_IF_ERROR(out_.write(build_tar_header(spec)));
  HashingSink hashing(&out_);
  DS_RETURN_IF_ERROR(copy_exact(content, hashing, size, what));
  if (Digest actual = hashing.digest(); actual != digest)
    return make_error(ErrorCode::kVerifyFailed, what + ": content hashes to " + actual.str() +
                                                    "; the archive is left incomplete");
  DS_RETURN_IF_ERROR(out_.write(std::string(tar_padding(size), '\0')));
  written_.push_back(digest);
  failed_ = false;
  return ok_status();
}

Status OciLayoutWriter::finish(const BlobDescriptor& target, const std::vector<std::string>& tags) {
  DS_RETURN_IF_ERROR(start());
  if (std::find(written_.begin(), written_.end(), target.digest) == written_.end())
    return make_error(ErrorCode::kInvalidArgument,
                      "OCI layout writer: the target " + target.digest.str() + " was not added");
  nlohmann::json base = {
      {"mediaType", target.media_type}, {"digest", target.digest.str()}, {"size", target.size}};
  nlohmann::json manifests = nlohmann::json::array();
  if (tags.empty()) manifests.push_back(base);
  for (const auto& tag : tags) {
    nlohmann::json entry = base;
    entry["annotations"] = {{"io.containerd.image.name", engine_detail::qualified_name(tag)}};
    manifests.push_back(entry);
  }
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", manifests}};
  DS_RETURN_IF_ERROR(write_member("index.json", index.dump()));
  DS_RETURN_IF_ERROR(write_member("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  return out_.write(std::string(2 * kTarBlock, '\0'));
}

}  // namespace deltasync
