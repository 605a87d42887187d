// DockerArchiveWriter: writes the legacy `docker save` layout, which every
// Docker and Podman version loads: <config-hex>.json, one
// <diffid-hex>/layer.tar per distinct layer, then manifest.json listing the
// config, tags and layer paths in order, then the two zero end blocks.
// manifest.json goes last so layers can be streamed as they arrive; docker
// load reads the whole archive before it looks at the manifest. The legacy
// "repositories" file is left out: it needs v1 layer IDs, and docker load
// uses manifest.json whenever it is present. Skipped layers (the engine holds
// them) get an empty placeholder <diffid-hex>/layer.tar, written by finish()
// so that a later add_layer() of the same diff_id can still write the real
// content under that path: Podman rejects an archive whose manifest names a
// missing file ("Some layer tarfiles are missing in the tarball"), although
// it never reads a layer it already stores. Tags go into manifest.json
// qualified ("docker.io/library/app:1"), see engine_detail::qualified_name.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/engine/engine_detail.h"
#include "common/image/image.h"
#include "common/image/manifest.h"
#include "common/tar/tar_entry.h"

namespace deltasync {

DockerArchiveWriter::DockerArchiveWriter(ByteSink& out, std::string config_bytes,
                                         std::vector<std::string> tags)
    : out_(out), config_bytes_(std::move(config_bytes)), tags_(std::move(tags)) {}

Status DockerArchiveWriter::write_member(const std::string& path, std::string_view data) {
  TarHeaderSpec spec;
  spec.path = path;
  spec.size = data.size();
  spec.mtime = mtime_;
  DS_RETURN_IF_ERROR(out_.write(build_tar_header(spec)));
  DS_RETURN_IF_ERROR(out_.write(data));
  return out_.write(std::string(tar_padding(data.size()), '\0'));
}

Status DockerArchiveWriter::start() {
  if (failed_ || finished_) {
    return make_error(ErrorCode::kInternal,
                      "docker-archive writer used after it failed or finished");
  }
  if (config_written_) return ok_status();
  DS_ASSIGN_OR_RETURN(expected_diff_ids_,
                      with_context(parse_config_diff_ids(config_bytes_), "docker-archive writer"));
  DS_RETURN_IF_ERROR(write_member(Digest::of(config_bytes_).hex() + ".json", config_bytes_));
  config_written_ = true;
  return ok_status();
}

Status DockerArchiveWriter::add_layer(const Digest& diff_id, uint64_t size, ByteSource& content) {
  DS_RETURN_IF_ERROR(start());
  size_t index = layer_paths_.size();
  std::string what =
      "docker-archive writer: layer " + std::to_string(index + 1) + " (" + diff_id.str() + ")";
  if (index >= expected_diff_ids_.size() || expected_diff_ids_[index] != diff_id) {
    failed_ = true;
    return make_error(ErrorCode::kInvalidArgument,
                      what + ": the config expects " +
                          (index < expected_diff_ids_.size() ? expected_diff_ids_[index].str()
                                                             : std::string("no more layers")) +
                          " here");
  }
  std::string path = diff_id.hex() + "/layer.tar";
  // Written before (an image may repeat a layer): reference it again. One
  // that was only skipped before is written now (the engine may need it at
  // this position of the chain).
  if (std::find(written_.begin(), written_.end(), diff_id) != written_.end()) {
    layer_paths_.push_back(path);
    return ok_status();
  }
  failed_ = true;  // until the layer is complete
  DS_RETURN_IF_ERROR(write_layer_header(diff_id, size));
  HashingSink hashing(&out_);
  DS_RETURN_IF_ERROR(copy_exact(content, hashing, size, what));
  Digest actual = hashing.digest();
  if (actual != diff_id) {
    return make_error(ErrorCode::kVerifyFailed, what + ": content hashes to " + actual.str() +
                                                    "; the archive is left incomplete");
  }
  DS_RETURN_IF_ERROR(out_.write(std::string(tar_padding(size), '\0')));
  layer_paths_.push_back(path);
  written_.push_back(diff_id);
  failed_ = false;
  return ok_status();
}

Status DockerArchiveWriter::write_layer_header(const Digest& diff_id, uint64_t size) {
  TarHeaderSpec dir_spec;
  dir_spec.path = diff_id.hex() + "/";
  dir_spec.type = '5';
  dir_spec.mode = 0755;
  dir_spec.mtime = mtime_;
  DS_RETURN_IF_ERROR(out_.write(build_tar_header(dir_spec)));
  TarHeaderSpec spec;
  spec.path = diff_id.hex() + "/layer.tar";
  spec.size = size;
  spec.mtime = mtime_;
  return out_.write(build_tar_header(spec));
}

Status DockerArchiveWriter::skip_layer(const Digest& diff_id) {
  DS_RETURN_IF_ERROR(start());
  size_t index = layer_paths_.size();
  if (index >= expected_diff_ids_.size() || expected_diff_ids_[index] != diff_id) {
    failed_ = true;
    return make_error(ErrorCode::kInvalidArgument,
                      "docker-archive writer: layer " + std::to_string(index + 1) + " (" +
                          diff_id.str() + ") is not the config's next layer");
  }
  layer_paths_.push_back(diff_id.hex() + "/layer.tar");
  return ok_status();
}

Status DockerArchiveWriter::finish() {
  DS_RETURN_IF_ERROR(start());
  if (layer_paths_.size() != expected_diff_ids_.size()) {
    failed_ = true;
    return make_error(ErrorCode::kInvalidArgument,
                      "docker-archive writer: " + std::to_string(layer_paths_.size()) +
                          " layers added, the config lists " +
                          std::to_string(expected_diff_ids_.size()));
  }
  // Placeholders for the layers that were only skipped (see the top).
  for (const Digest& diff_id : expected_diff_ids_) {
    if (std::find(written_.begin(), written_.end(), diff_id) != written_.end()) continue;
    failed_ = true;
    DS_RETURN_IF_ERROR(write_layer_header(diff_id, 0));
    written_.push_back(diff_id);
    failed_ = false;
  }
  // Qualified names: Podman's load reads a short "app:1" as
  // "localhost/app:1", Docker's reads both forms as "app:1".
  std::vector<std::string> repo_tags;
  for (const auto& tag : tags_) repo_tags.push_back(engine_detail::qualified_name(tag));
  nlohmann::json entry = {
      {"Config", Digest::of(config_bytes_).hex() + ".json"},
      {"RepoTags", repo_tags.empty() ? nlohmann::json(nullptr) : nlohmann::json(repo_tags)},
      {"Layers", layer_paths_},
  };
  std::string manifest = nlohmann::json::array({entry}).dump();
  DS_RETURN_IF_ERROR(write_member("manifest.json", manifest));
  DS_RETURN_IF_ERROR(out_.write(std::string(2 * kTarBlock, '\0')));
  finished_ = true;
  return ok_status();
}

}  // namespace deltasync
