#include "common/image/blob_recipes.h"

#include <array>
#include <chrono>

#include "common/crypto/digest.h"
#include "common/io/file.h"

namespace deltasync {

namespace {

bool is_gzip_media_type(const std::string& media_type) {
  return media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") ||
         media_type.ends_with("tar.gzip");
}

// Accepts writes only while they equal `expected`; the first difference
// fails the write, so the compressor is stopped there.
class ComparingSink final : public ByteSink {
 public:
  explicit ComparingSink(ByteSource& expected) : expected_(expected) {}
  Status write(std::string_view data) override {
    while (!data.empty()) {
      size_t n = std::min(data.size(), buffer_.size());
      DS_ASSIGN_OR_RETURN(size_t got, read_full(expected_, std::span<char>(buffer_.data(), n)));
      if (got < n || std::string_view(buffer_.data(), n) != data.substr(0, n))
        return make_error(ErrorCode::kVerifyFailed,
                          "differs from the blob near byte " + std::to_string(offset_));
      offset_ += n;
      data.remove_prefix(n);
    }
    return ok_status();
  }
  Status finish() override {
    char probe;
    DS_ASSIGN_OR_RETURN(size_t extra, expected_.read(std::span<char>(&probe, 1)));
    if (extra != 0)
      return make_error(ErrorCode::kVerifyFailed,
                        "ends at byte " + std::to_string(offset_) + ", before the blob does");
    return ok_status();
  }

 private:
  ByteSource& expected_;
  std::array<char, 1 << 16> buffer_;
  uint64_t offset_ = 0;
};

// Counts bytes passing through a source.
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(ByteSource& inner) : inner_(inner) {}
  Result<size_t> read(std::span<char> buffer) override {
    DS_ASSIGN_OR_RETURN(size_t n, inner_.read(buffer));
    count_ += n;
    return n;
  }
  uint64_t count() const { return count_; }

 private:
  ByteSource& inner_;
  uint64_t count_ = 0;
};

}  // namespace

Result<RecipeSearch> find_blob_recipes(ImageReader& reader, DistributionIdentity& identity,
                                       const GoGzip& gzip, const std::filesystem::path& cache_dir) {
  auto started = std::chrono::steady_clock::now();
  RecipeSearch search;
  if (identity.layers.size() != reader.info().layers.size())
    return make_error(ErrorCode::kInternal, "find_blob_recipes: identity of another image");
  for (size_t i = 0; i < identity.layers.size(); ++i) {
    DistributionLayer& layer = identity.layers[i];
    if (layer.uncompressed() || layer.recipe || !is_gzip_media_type(layer.blob.media_type))
      continue;
    ++search.layers_tried;
    std::filesystem::path cached;
    if (!cache_dir.empty()) {
      cached = cache_dir / layer.blob.digest.hex();
      // "<flavor> <level>", written by an earlier run that proved it.
      if (auto text = read_small_file(cached, 256)) {
        std::string flavor = text->substr(0, text->find(' '));
        if (gzip.find_flavor(flavor) != nullptr) {
          layer.recipe = BlobRecipe{flavor, -1};
          ++search.layers_reproduced;
          ++search.layers_from_cache;
          continue;
        }
      }
    }
    for (const auto& helper : gzip.helpers()) {
      DS_ASSIGN_OR_RETURN(auto tar, reader.open_layer(i));
      DS_ASSIGN_OR_RETURN(auto blob, reader.open_blob(i));
      CountingSource counted(*tar);
      ComparingSink compare(*blob);
      Status same = GoGzip::compress(helper, -1, counted, compare);
      search.plain_bytes += counted.count();
      if (same) same = compare.finish();
      if (same) {
        layer.recipe = BlobRecipe{helper.flavor, -1};
        ++search.layers_reproduced;
        if (!cached.empty()) {
          std::error_code ec;
          std::filesystem::create_directories(cache_dir, ec);
          // A cache: failing to keep it costs only a later re-proof.
          (void)write_file_atomically(cached, helper.flavor + " -1\n");
        }
        break;
      }
      // A difference is the expected answer for a wrong flavor; anything
      // else (an unreadable layer, a helper that fails) is an error.
      if (same.error().code() != ErrorCode::kVerifyFailed && same.error().code() != ErrorCode::kIo)
        return std::unexpected(std::move(same).error());
    }
  }
  search.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return search;
}

Status rebuild_blob(const DistributionLayer& layer, ByteSource& tar, ByteSink& out,
                    const GoGzip& gzip) {
  const std::string what = "blob " + layer.blob.digest.str() + " of layer " + layer.diff_id.str();
  if (!layer.recipe) return make_error(ErrorCode::kUnsupported, what + ": no recipe");
  const GoGzip::Helper* helper = gzip.find_flavor(layer.recipe->flavor);
  if (!helper)
    return make_error(
        ErrorCode::kUnsupported,
        what + ": needs Go gzip flavor " + layer.recipe->flavor +
            ", which no deltasync-gzip helper here has (installed: " + gzip.describe() + ")");
  HashingSink hashing(&out);
  DS_RETURN_IF_ERROR(
      with_context(GoGzip::compress(*helper, layer.recipe->level, tar, hashing), what));
  Digest actual = hashing.digest();
  if (actual != layer.blob.digest || hashing.bytes() != layer.blob.size)
    return make_error(ErrorCode::kVerifyFailed, what + ": rebuilt with " + helper->go_version +
                                                    " it is " + actual.str() + " (" +
                                                    std::to_string(hashing.bytes()) + " bytes)");
  return ok_status();
}

}  // namespace deltasync
