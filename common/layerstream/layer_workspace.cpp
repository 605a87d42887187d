#include "common/layerstream/layer_workspace.h"

#include <fcntl.h>

namespace deltasync {

namespace {
// Writes what it reads to a sink (the layer file) as the indexer consumes it.
class TeeSource final : public ByteSource {
 public:
  TeeSource(ByteSource& inner, ByteSink& copy) : inner_(inner), copy_(copy) {}
  Result<size_t> read(std::span<char> buffer) override {
    DS_ASSIGN_OR_RETURN(size_t got, inner_.read(buffer));
    if (got > 0) DS_RETURN_IF_ERROR(copy_.write(std::string_view(buffer.data(), got)));
    return got;
  }

 private:
  ByteSource& inner_;
  ByteSink& copy_;
};
}  // namespace

Result<std::unique_ptr<LayerWorkspace>> LayerWorkspace::create(const std::filesystem::path& parent,
                                                               std::string_view prefix) {
  DS_ASSIGN_OR_RETURN(TempDir dir, TempDir::create(parent, prefix));
  return std::unique_ptr<LayerWorkspace>(new LayerWorkspace(std::move(dir)));
}

Result<std::pair<std::filesystem::path, UniqueFd>> LayerWorkspace::create_file(
    const Digest& diff_id) {
  auto path = path_of(diff_id);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(errno_error(errno, "create " + path.string()));
  return std::make_pair(path, UniqueFd(fd));
}

void LayerWorkspace::adopt_rebuilt(const Digest& diff_id, UniqueFd fd, uint64_t size) {
  layers_[diff_id] = Layer{std::move(fd), size, nullptr};
}

Result<const LayerIndex*> LayerWorkspace::add_from_image(ImageReader& image, size_t i) {
  const LayerInfo& info = image.info().layers.at(i);
  if (auto it = layers_.find(info.diff_id); it != layers_.end() && it->second.index)
    return it->second.index.get();
  std::string name = "layer " + std::to_string(i + 1) + " (" + info.diff_id.short_str() + ") of " +
                     image.describe();
  DS_ASSIGN_OR_RETURN(auto file, create_file(info.diff_id));
  int write_fd = ::dup(file.second.get());
  if (write_fd < 0) return std::unexpected(errno_error(errno, "dup"));
  FdSink sink(UniqueFd(write_fd), file.first.string());
  BufferedSink buffered(sink);
  DS_ASSIGN_OR_RETURN(auto source, image.open_layer(i));
  TeeSource tee(*source, buffered);
  DS_ASSIGN_OR_RETURN(LayerIndex index, build_layer_index(tee, info.diff_id, name));
  DS_RETURN_IF_ERROR(buffered.flush());
  bytes_copied_ += index.tar_size;
  Layer layer{std::move(file.second), index.tar_size,
              std::make_unique<LayerIndex>(std::move(index))};
  const LayerIndex* ptr = layer.index.get();
  layers_[info.diff_id] = std::move(layer);
  return ptr;
}

int LayerWorkspace::fd(const Digest& diff_id) const {
  auto it = layers_.find(diff_id);
  return it == layers_.end() ? -1 : it->second.fd.get();
}

uint64_t LayerWorkspace::size(const Digest& diff_id) const {
  auto it = layers_.find(diff_id);
  return it == layers_.end() ? 0 : it->second.size;
}

const LayerIndex* LayerWorkspace::index(const Digest& diff_id) const {
  auto it = layers_.find(diff_id);
  return it == layers_.end() ? nullptr : it->second.index.get();
}

}  // namespace deltasync
