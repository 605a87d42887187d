// fuzz_bundle_reader: BundleReader (common/bundle/bundle_file.h) on a file
// someone carried to the site: open, verify(), the header, then every
// layer's stream, as `deltarecvd apply` reads them.
//
// verify() checks a sha256 trailer first, which random mutations almost
// never get right; so in mode 1 the target appends the trailer a writer
// would (the sha256 of everything before it), letting the fuzzer reach the
// header and layer parsing behind the checksum.
//
// Input: [mode] file
//   mode & 1 == 0: file is the whole bundle
//   mode & 1 == 1: file is a bundle without its trailer; the target adds it
#include "common/bundle/bundle_file.h"
#include "common/crypto/digest.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "bundle_reader";
constexpr int kMaxLayers = 64;

std::string with_trailer(std::string_view body) {
  std::string file(body);
  wire::BundleFrame frame;
  Digest sum = Digest::of(body);
  frame.mutable_trailer()->set_sha256(reinterpret_cast<const char*>(sum.raw().data()), 32);
  std::string bytes = frame.SerializeAsString();
  auto n = static_cast<uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) file.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  file += bytes;
  return file;
}

}  // namespace

int fuzz_bundle_reader(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t mode = in.byte();
  MemFile file = MemFile::create((mode & 1) ? with_trailer(in.rest()) : std::string(in.rest()));
  auto reader = BundleReader::open(file.path());
  if (!reader) violation(kTarget, "cannot open the bundle file: " + reader.error().message());
  if (!(*reader)->verify()) return 0;
  const wire::BundleHeader& header = (*reader)->header();
  // Version 1 (unsigned) and 2 are read; the header repeats the magic's.
  if (header.format_version() != (*reader)->format_version() ||
      (header.format_version() != 1 && header.format_version() != kBundleFormatVersion))
    violation(kTarget,
              "verify() accepted format version " + std::to_string(header.format_version()));
  if ((*reader)->format_version() < 2 &&
      (*reader)->signature().scheme != BundleSignature::Scheme::kNone)
    violation(kTarget, "a version-1 bundle came with a signature");
  (void)header.SerializeAsString();
  std::string buffer(64 << 10, '\0');
  for (int layer = 0; layer < kMaxLayers; ++layer) {
    auto begin = (*reader)->next_layer();
    if (!begin) break;
    uint64_t total = 0;
    while (total <= kMaxLayerRead) {
      auto n = (*reader)->layer_stream().read(buffer);
      if (!n || *n == 0) break;
      if (*n > buffer.size()) violation(kTarget, "layer_stream() returned more than asked");
      total += *n;
    }
    if (total > file.size()) violation(kTarget, "a layer holds more bytes than the file");
  }
  return 0;
}

}  // namespace deltasync::fuzz
