// open_image(): turns an ImageRef into an ImageReader. Files and directories
// are indexed in place (archive_index.h) and described by their manifests
// (manifest.h); an engine image is first exported (`docker save` via the
// Engine API) into an unlinked temp file under default_temp_parent(), which
// the reader then reads as a docker-archive, so the file disappears with the
// reader, or with the process if it dies.
//
// Layers are read as a pipeline: pread range -> gunzip/unzstd (by magic) ->
// VerifyingSource against the diff_id, so a layer is checked in the same
// pass that consumes it and any error names the layer and the image.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/codec/compression.h"
#include "common/engine/engine_client.h"
#include "common/image/archive_index.h"
#include "common/image/image.h"
#include "common/image/manifest.h"
#include "common/io/file.h"

namespace deltasync {

namespace {

// Prefixes every error of the wrapped source with `context`.
class ContextSource final : public ByteSource {
 public:
  ContextSource(std::unique_ptr<ByteSource> inner, std::string context)
      : inner_(std::move(inner)), context_(std::move(context)) {}
  Result<size_t> read(std::span<char> buffer) override {
    return with_context(inner_->read(buffer), context_);
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  std::string context_;
};

class LayoutImageReader final : public ImageReader {
 public:
  LayoutImageReader(std::unique_ptr<MemberStore> store, ImageInfo info, std::string description)
      : store_(std::move(store)), info_(std::move(info)), description_(std::move(description)) {}

  const ImageInfo& info() const override { return info_; }
  std::string describe() const override { return description_; }
  void set_tags(std::vector<std::string> tags) { info_.tags = std::move(tags); }
  void set_engine_id(std::string id) { info_.engine_id = std::move(id); }

  Result<std::unique_ptr<ByteSource>> open_blob(size_t index) override {
    if (index >= info_.layers.size())
      return make_error(ErrorCode::kInvalidArgument,
                        description_ + ": no layer " + std::to_string(index + 1));
    return with_context(store_->open(info_.layers[index].blob_name),
                        "layer " + std::to_string(index + 1) + " of " + description_);
  }

  Result<std::unique_ptr<ByteSource>> open_layer(size_t index) override {
    if (index >= info_.layers.size()) {
      return make_error(ErrorCode::kInvalidArgument, description_ + ": no layer " +
                                                         std::to_string(index + 1) + " (it has " +
                                                         std::to_string(info_.layers.size()) + ")");
    }
    const LayerInfo& layer = info_.layers[index];
    std::string name = "layer " + std::to_string(index + 1) +
                       " (sha256:" + layer.diff_id.short_str() + ") of " + description_;
    DS_ASSIGN_OR_RETURN(auto blob, with_context(store_->open(layer.blob_name), name));
    DS_ASSIGN_OR_RETURN(auto plain,
                        with_context(open_decompressed(std::move(blob), layer.blob_name), name));
    auto named = std::make_unique<ContextSource>(std::move(plain), name);
    return std::unique_ptr<ByteSource>(
        std::make_unique<VerifyingSource>(std::move(named), layer.diff_id, name));
  }

 private:
  std::unique_ptr<MemberStore> store_;
  ImageInfo info_;
  std::string description_;
};

Result<std::unique_ptr<LayoutImageReader>> read_layout(std::unique_ptr<MemberStore> store,
                                                       const ImageRef& ref,
                                                       std::string description) {
  Result<ImageLayout> layout = ref.transport == ImageRef::Transport::kDockerArchive ||
                                       ref.transport == ImageRef::Transport::kEngine
                                   ? read_docker_archive_layout(*store, ref.oci_ref, ref.platform)
                                   : read_oci_layout(*store, ref.oci_ref, ref.platform);
  if (!layout) return std::unexpected(std::move(layout).error());
  DS_ASSIGN_OR_RETURN(ImageInfo info, read_image_info(*store, *layout));
  if (!ref.platform.empty()) {
    std::string got = info.os + "/" + info.architecture;
    if (!ref.platform.starts_with(got))
      return make_error(ErrorCode::kNotFound,
                        "the image is for " + got + ", not " + ref.platform + " (--platform)");
  }
  // The distribution identity is extra: a layout whose documents we cannot
  // follow still gives the content identity.
  if (auto distribution = read_distribution_identity(*store, info, ref.oci_ref); distribution)
    info.distribution = std::move(*distribution);
  return std::make_unique<LayoutImageReader>(std::move(store), std::move(info),
                                             std::move(description));
}

// A read-write temp file that is already unlinked: nothing to clean up.
Result<UniqueFd> create_unlinked_temp_file() {
  std::string pattern = (default_temp_parent() / "deltasync-export-XXXXXX").string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return std::unexpected(errno_error(errno, "create a temp file in " +
                                                  default_temp_parent().string() +
                                                  " (set TMPDIR to a writable directory)"));
  }
  ::unlink(name.data());
  return UniqueFd(fd);
}

Result<std::unique_ptr<ImageReader>> open_engine_image(const ImageRef& ref, EngineClient& engine) {
  std::string description = "image " + ref.location + " in the engine at " + engine.address();
  DS_ASSIGN_OR_RETURN(EngineImageDetail detail, engine.inspect_image(ref.location));
  DS_ASSIGN_OR_RETURN(UniqueFd file, create_unlinked_temp_file());
  int sink_fd = ::dup(file.get());
  if (sink_fd < 0) return std::unexpected(errno_error(errno, "dup temp file"));
  FdSink sink(UniqueFd(sink_fd), "temp file for the export of " + ref.location);
  DS_RETURN_IF_ERROR(
      with_context(engine.export_image(ref.location, sink, ref.platform), "export " + description));
  DS_RETURN_IF_ERROR(sink.finish());

  std::string archive_name = "export of " + description;
  DS_ASSIGN_OR_RETURN(auto store,
                      with_context(open_tar_members(std::move(file), archive_name), archive_name));
  ImageRef archive_ref = ref;
  archive_ref.oci_ref.clear();  // an export of one name holds one image
  DS_ASSIGN_OR_RETURN(
      auto reader,
      with_context(read_layout(std::move(store), archive_ref, description), archive_name));
  // The tag may have moved between inspect and export; then the tags and
  // layers we report would not belong together.
  if (!detail.diff_ids.empty()) {
    std::vector<std::string> exported;
    for (const auto& layer : reader->info().layers) exported.push_back(layer.diff_id.str());
    if (exported != detail.diff_ids) {
      return make_error(ErrorCode::kEngine,
                        description + " changed while it was being exported; run again");
    }
  }
  std::vector<std::string> tags;
  for (const auto& tag : detail.repo_tags) {
    if (tag != "<none>:<none>") tags.push_back(tag);
  }
  reader->set_tags(std::move(tags));
  reader->set_engine_id(detail.id);
  return std::unique_ptr<ImageReader>(std::move(reader));
}

}  // namespace

Result<std::unique_ptr<ImageReader>> open_image(const ImageRef& ref, EngineClient* engine) {
  switch (ref.transport) {
    case ImageRef::Transport::kEngine:
      if (engine == nullptr) {
        return make_error(ErrorCode::kInvalidArgument,
                          "'" + ref.original +
                              "' names an image in the container engine, but no engine is "
                              "available here; use docker-archive:PATH or oci-archive:PATH");
      }
      return open_engine_image(ref, *engine);
    case ImageRef::Transport::kDockerArchive:
    case ImageRef::Transport::kOciArchive: {
      std::string description = ref.original;
      DS_ASSIGN_OR_RETURN(auto store,
                          with_context(open_tar_members(ref.location, description), description));
      DS_ASSIGN_OR_RETURN(
          auto reader, with_context(read_layout(std::move(store), ref, description), description));
      return std::unique_ptr<ImageReader>(std::move(reader));
    }
    case ImageRef::Transport::kOciDir: {
      std::string description = ref.original;
      DS_ASSIGN_OR_RETURN(
          auto store, with_context(open_directory_members(ref.location, description), description));
      DS_ASSIGN_OR_RETURN(
          auto reader, with_context(read_layout(std::move(store), ref, description), description));
      return std::unique_ptr<ImageReader>(std::move(reader));
    }
  }
  return make_error(ErrorCode::kInternal, "unknown image transport");
}

}  // namespace deltasync
