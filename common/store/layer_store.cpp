#include "common/store/layer_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <system_error>

#include <spdlog/spdlog.h>

#include "common/index/index_codec.h"

namespace deltasync {

namespace fs = std::filesystem;

namespace {

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "store: create " + dir.string() + ": " + ec.message());
  return ok_status();
}

Result<UniqueFd> open_read(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(errno_error(errno, "store: open " + path.string()));
  return UniqueFd(fd);
}

// Writes what it reads to a sink as the indexer consumes it.
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

Result<uint64_t> parse_byte_size(std::string_view text) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data())
    return make_error(ErrorCode::kInvalidArgument,
                      "size '" + std::string(text) + "': expected a number such as 20G or 512M");
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  uint64_t multiplier = 1;
  if (unit.empty() || unit == "B") {
  } else if (unit == "K" || unit == "KiB") {
    multiplier = 1ull << 10;
  } else if (unit == "M" || unit == "MiB") {
    multiplier = 1ull << 20;
  } else if (unit == "G" || unit == "GiB") {
    multiplier = 1ull << 30;
  } else if (unit == "T" || unit == "TiB") {
    multiplier = 1ull << 40;
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "size '" + std::string(text) + "': unknown unit (use K, M, G or T)");
  }
  return value * multiplier;
}

Result<std::unique_ptr<LayerStore>> LayerStore::open(const fs::path& root, uint64_t budget_bytes,
                                                     OpenMode mode) {
  std::unique_ptr<LayerStore> store(new LayerStore(root, budget_bytes));
  DS_RETURN_IF_ERROR(make_dirs(root / "layers"));
  DS_RETURN_IF_ERROR(make_dirs(root / "partial"));
  DS_RETURN_IF_ERROR(make_dirs(root / "configs"));
  DS_RETURN_IF_ERROR(make_dirs(root / "engine-ids"));
  std::error_code ec;
  if (mode == OpenMode::kShared) {
    DS_RETURN_IF_ERROR(make_dirs(root / "tmp"));
    return store;
  }
  fs::remove_all(root / "tmp", ec);  // scratch of a previous run
  DS_RETURN_IF_ERROR(make_dirs(root / "tmp"));
  // Temp files of interrupted renames.
  for (const auto& entry : fs::directory_iterator(root / "layers", ec)) {
    if (entry.path().filename().string().find(".tmp") != std::string::npos)
      fs::remove(entry.path(), ec);
  }
  return store;
}

fs::path LayerStore::tar_path(const Digest& d) const {
  return root_ / "layers" / (d.hex() + ".tar");
}
fs::path LayerStore::index_path(const Digest& d) const {
  return root_ / "layers" / (d.hex() + ".idx");
}

bool LayerStore::has(const Digest& diff_id) const {
  std::error_code ec;
  return fs::exists(tar_path(diff_id), ec);
}

bool LayerStore::mark_used(const Digest& diff_id) {
  if (!has(diff_id)) return false;
  touch(diff_id);
  return true;
}

void LayerStore::touch(const Digest& d) {
  ::utimensat(AT_FDCWD, tar_path(d).c_str(), nullptr, 0);
}

Status LayerStore::write_index(const LayerIndex& index) {
  DS_ASSIGN_OR_RETURN(std::string bytes, encode_layer_index(index, 32));
  return write_file_atomically(index_path(index.diff_id), bytes);
}

Result<StoredLayer> LayerStore::open_layer(const Digest& diff_id) {
  StoredLayer layer;
  DS_ASSIGN_OR_RETURN(layer.fd, open_read(tar_path(diff_id)));
  struct stat st {};
  if (::fstat(layer.fd.get(), &st) != 0) return std::unexpected(errno_error(errno, "store: stat"));
  layer.size = static_cast<uint64_t>(st.st_size);
  auto bytes = read_small_file(index_path(diff_id), size_t{1} << 30);
  std::optional<LayerIndex> index;
  if (bytes) {
    auto decoded = decode_layer_index(*bytes, "store index " + diff_id.short_str());
    if (decoded && decoded->diff_id == diff_id && decoded->tar_size == layer.size)
      index = std::move(*decoded);
  }
  if (!index) {
    // Index it again (verifying the tar on the way).
    VerifyingSource verified(std::make_unique<FileSource>(layer.fd.get(), 0, layer.size,
                                                          "stored layer " + diff_id.short_str()),
                             diff_id, "stored layer " + diff_id.short_str());
    auto rebuilt = build_layer_index(verified, diff_id, "stored layer " + diff_id.short_str());
    if (!rebuilt) {
      std::error_code ec;
      fs::remove(tar_path(diff_id), ec);
      fs::remove(index_path(diff_id), ec);
      return std::unexpected(std::move(rebuilt).error().with_context(
          "store: layer " + diff_id.short_str() + " was damaged and has been removed"));
    }
    DS_RETURN_IF_ERROR(write_index(*rebuilt));
    index = std::move(*rebuilt);
  }
  layer.index = std::make_shared<const LayerIndex>(std::move(*index));
  touch(diff_id);
  return layer;
}

Result<StoredLayer> LayerStore::import(ByteSource& verified_tar, const Digest& diff_id,
                                       std::string_view name) {
  DS_ASSIGN_OR_RETURN(auto file, AtomicFile::create(tar_path(diff_id)));
  BufferedSink buffered(*file);
  TeeSource tee(verified_tar, buffered);
  DS_ASSIGN_OR_RETURN(LayerIndex index, build_layer_index(tee, diff_id, name));
  DS_RETURN_IF_ERROR(buffered.flush());
  DS_RETURN_IF_ERROR(file->finish());
  DS_RETURN_IF_ERROR(write_index(index));
  DS_RETURN_IF_ERROR(file->publish());
  return open_layer(diff_id);
}

Status LayerStore::adopt_rebuilt(const Digest& diff_id, const fs::path& file) {
  std::error_code ec;
  fs::rename(file, tar_path(diff_id), ec);
  if (ec)
    return make_error(ErrorCode::kIo, "store: move " + file.string() + " in: " + ec.message());
  touch(diff_id);
  return ok_status();
}

Result<LayerStore::AdoptHow> LayerStore::adopt_verified(const Digest& diff_id, int fd,
                                                        const LayerIndex& index) {
  if (index.diff_id != diff_id)
    return make_error(ErrorCode::kInternal, "store: the index of " + index.diff_id.short_str() +
                                                " given for layer " + diff_id.short_str());
  if (has(diff_id)) {
    touch(diff_id);
    return AdoptHow::kAlreadyHeld;
  }
  const std::string what = "store: layer " + diff_id.short_str();
  if (::fsync(fd) != 0) return std::unexpected(errno_error(errno, what + ": sync"));
  DS_RETURN_IF_ERROR(write_index(index));
  // A hard link of the open file, through /proc (linkat with AT_EMPTY_PATH
  // needs CAP_DAC_READ_SEARCH); rename makes it appear whole.
  const fs::path final_path = tar_path(diff_id);
  const fs::path temp_path = root_ / "layers" / (diff_id.hex() + ".tar.tmp-link");
  std::error_code ec;
  fs::remove(temp_path, ec);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, temp_path.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    fs::rename(temp_path, final_path, ec);
    if (ec) {
      fs::remove(temp_path, ec);
      return make_error(ErrorCode::kIo,
                        what + ": rename into " + final_path.string() + ": " + ec.message());
    }
    touch(diff_id);
    return AdoptHow::kLinked;
  }
  // Another file system (EXDEV), or no /proc: copy it.
  DS_ASSIGN_OR_RETURN(uint64_t size, file_size(fd, final_path));
  DS_ASSIGN_OR_RETURN(auto file, AtomicFile::create(final_path));
  FileSource source(fd, 0, size, what);
  DS_RETURN_IF_ERROR(copy_exact(source, *file, size, what));
  DS_RETURN_IF_ERROR(file->finish());
  DS_RETURN_IF_ERROR(file->publish());
  touch(diff_id);
  return AdoptHow::kCopied;
}

Result<StoredLayer> LayerStore::open_layer_verified(const Digest& diff_id) {
  StoredLayer layer;
  DS_ASSIGN_OR_RETURN(layer.fd, open_read(tar_path(diff_id)));
  const std::string what = "stored layer " + diff_id.short_str();
  DS_ASSIGN_OR_RETURN(layer.size, file_size(layer.fd.get(), tar_path(diff_id)));
  VerifyingSource verified(std::make_unique<FileSource>(layer.fd.get(), 0, layer.size, what),
                           diff_id, what);
  auto index = build_layer_index(verified, diff_id, what);
  if (!index) {
    std::error_code ec;
    fs::remove(tar_path(diff_id), ec);
    fs::remove(index_path(diff_id), ec);
    return std::unexpected(std::move(index).error().with_context(
        "store: layer " + diff_id.short_str() + " (" + tar_path(diff_id).string() +
        ") is damaged and has been removed"));
  }
  layer.index = std::make_shared<const LayerIndex>(std::move(*index));
  touch(diff_id);
  return layer;
}

Status LayerStore::write_config(const Digest& image_id, std::string_view config) {
  if (Digest::of(config) != image_id)
    return make_error(ErrorCode::kInternal, "store: config does not hash to its image ID");
  return write_file_atomically(root_ / "configs" / (image_id.hex() + ".json"), config);
}

Status LayerStore::link_engine_image(const std::string& engine_id, const Digest& config_digest) {
  DS_ASSIGN_OR_RETURN(Digest id, with_context(Digest::parse(engine_id), "store: engine image ID"));
  if (id == config_digest) return ok_status();
  return write_file_atomically(root_ / "engine-ids" / id.hex(), config_digest.str());
}

std::optional<Digest> LayerStore::config_of_engine_image(const std::string& engine_id) const {
  auto id = Digest::parse(engine_id);
  if (!id) return std::nullopt;
  auto text = read_small_file(root_ / "engine-ids" / id->hex(), 256);
  if (!text) return std::nullopt;
  auto digest = Digest::parse(*text);
  if (!digest) return std::nullopt;
  return *digest;
}

std::optional<std::string> LayerStore::read_config(const Digest& image_id) const {
  auto text = read_small_file(root_ / "configs" / (image_id.hex() + ".json"), 16 << 20);
  if (!text || Digest::of(*text) != image_id) return std::nullopt;
  return *text;
}

fs::path LayerStore::partial_file(const Digest& image_id, const Digest& diff_id) const {
  return root_ / "partial" / image_id.hex() / (diff_id.hex() + ".tar");
}

std::optional<LayerCheckpoint> LayerStore::read_checkpoint(const Digest& image_id,
                                                           const Digest& diff_id) const {
  auto path = partial_file(image_id, diff_id);
  auto text = read_small_file(fs::path(path).replace_extension(".ckpt"), 256);
  if (!text) return std::nullopt;
  LayerCheckpoint c;
  if (std::sscanf(text->c_str(), "%lu %lu", &c.entries, &c.tar_bytes) != 2) return std::nullopt;
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec || size < c.tar_bytes) return std::nullopt;
  return c;
}

Status LayerStore::write_checkpoint(const Digest& image_id, const Digest& diff_id,
                                    const LayerCheckpoint& checkpoint) {
  auto path = fs::path(partial_file(image_id, diff_id)).replace_extension(".ckpt");
  return write_file_atomically(
      path, std::to_string(checkpoint.entries) + " " + std::to_string(checkpoint.tar_bytes) + "\n");
}

void LayerStore::drop_partial(const Digest& image_id) {
  std::error_code ec;
  fs::remove_all(root_ / "partial" / image_id.hex(), ec);
}

void LayerStore::pin(const Digest& diff_id) {
  std::lock_guard lock(mutex_);
  ++pins_[diff_id];
}

void LayerStore::unpin(const Digest& diff_id) {
  std::lock_guard lock(mutex_);
  if (--pins_[diff_id] <= 0) pins_.erase(diff_id);
}

uint64_t LayerStore::bytes_used() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(root_, ec)) {
    if (entry.is_regular_file(ec)) total += entry.file_size(ec);
  }
  return total;
}

size_t LayerStore::layer_count() const {
  size_t n = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_ / "layers", ec))
    if (entry.path().extension() == ".tar") ++n;
  return n;
}

Status LayerStore::enforce_budget() {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  // Partial transfers, by the time of their newest write.
  struct Partial {
    fs::file_time_type written;
    fs::path dir;
  };
  std::vector<Partial> partials;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& image : fs::directory_iterator(root_ / "partial", ec)) {
    if (!image.is_directory(ec)) continue;
    fs::file_time_type newest = image.last_write_time(ec);
    for (const auto& file : fs::directory_iterator(image.path(), ec))
      newest = std::max(newest, file.last_write_time(ec));
    if (now - newest > kAbandonedPartialAge) {
      spdlog::info("store: dropping the partial transfer {} (no write for a week)",
                   image.path().filename().string());
      fs::remove_all(image.path(), ec);
      continue;
    }
    partials.push_back({newest, image.path()});
  }

  struct Candidate {
    fs::file_time_type used;
    fs::path path;
    uint64_t size;
  };
  std::vector<Candidate> layers;
  uint64_t total = bytes_used();
  for (const auto& entry : fs::directory_iterator(root_ / "layers", ec)) {
    if (entry.path().extension() != ".tar") continue;
    auto digest = Digest::parse(entry.path().stem().string(), true);
    if (!digest || pins_.count(*digest)) continue;
    layers.push_back({entry.last_write_time(ec), entry.path(), entry.file_size(ec)});
  }
  std::sort(layers.begin(), layers.end(),
            [](const Candidate& a, const Candidate& b) { return a.used < b.used; });
  for (const auto& layer : layers) {
    if (total <= budget_) break;
    spdlog::info("store: evicting {} ({} bytes) to stay within the budget",
                 layer.path.filename().string(), layer.size);
    fs::remove(layer.path, ec);
    fs::remove(fs::path(layer.path).replace_extension(".idx"), ec);
    total -= std::min(total, layer.size);
  }
  // Still over: idle partial transfers, oldest first (a running one writes
  // at least every segment, so it is never idle this long).
  std::sort(partials.begin(), partials.end(),
            [](const Partial& a, const Partial& b) { return a.written < b.written; });
  for (const auto& partial : partials) {
    if (total <= budget_ || now - partial.written <= kIdlePartialAge) break;
    uint64_t size = 0;
    for (const auto& file : fs::directory_iterator(partial.dir, ec))
      if (file.is_regular_file(ec)) size += file.file_size(ec);
    spdlog::info(
        "store: dropping the idle partial transfer {} ({} bytes) to stay within the budget",
        partial.dir.filename().string(), size);
    fs::remove_all(partial.dir, ec);
    total -= std::min(total, size);
  }
  return ok_status();
}

}  // namespace deltasync
