// fuzz_archive_reader: open_image() on a docker-archive: or oci-archive:
// file (common/image/): the tar index of the archive, manifest.json /
// index.json / the config, then every layer through decompression and
// diff_id verification, as `deltasend bundle docker-archive:...` reads it.
//
// Promises checked besides "no crash": the image ID is the sha256 of the
// config bytes, and a layer that reads to its end without an error hashes
// to its diff_id (the verifying source must not let a wrong layer through).
// Layers are read up to kMaxLayerRead bytes (a small compressed blob may
// expand a lot; that is slow, not wrong).
//
// Input: [transport] archive
//   transport & 1: 0 docker-archive:, 1 oci-archive:
//   transport & 2: name an image in the reference (PATH:app:1.0)
#include "common/crypto/digest.h"
#include "common/image/image.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {
constexpr std::string_view kTarget = "archive_reader";
constexpr size_t kMaxLayers = 64;
}  // namespace

int fuzz_archive_reader(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t transport = in.byte();
  MemFile file = MemFile::create(in.rest());
  std::string text = ((transport & 1) ? "oci-archive:" : "docker-archive:") + file.path().string();
  if (transport & 2) text += ":app:1.0";
  auto ref = ImageRef::parse(text);
  if (!ref) violation(kTarget, "cannot parse '" + text + "': " + ref.error().message());
  auto image = open_image(*ref, nullptr);
  if (!image) return 0;
  const ImageInfo& info = (*image)->info();
  if (info.image_id != Digest::of(info.config_bytes))
    violation(kTarget, "the image ID is not the sha256 of the config bytes");
  (void)(*image)->describe();
  std::string buffer(256 << 10, '\0');
  for (size_t i = 0; i < info.layers.size() && i < kMaxLayers; ++i) {
    auto layer = (*image)->open_layer(i);
    if (!layer) continue;
    Sha256 hasher;
    uint64_t total = 0;
    bool ended = false;
    while (total <= kMaxLayerRead) {
      auto n = (*layer)->read(buffer);
      if (!n) break;
      if (*n > buffer.size()) violation(kTarget, "a layer source returned more than asked");
      if (*n == 0) {
        ended = true;
        break;
      }
      hasher.update(std::string_view(buffer.data(), *n));
      total += *n;
    }
    if (ended && hasher.finish() != info.layers[i].diff_id)
      violation(kTarget, "layer " + std::to_string(i) + " read to its end but does not hash to " +
                             info.layers[i].diff_id.str());
  }
  return 0;
}

}  // namespace deltasync::fuzz
