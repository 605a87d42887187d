// fuzz_tar_split: a layer tar through split_tar (the receiver splits every
// layer it indexes or stores). Malformed archives must be refused with an
// Error. When an archive splits, the split must be lossless: the metadata
// stream (TarMetadataWriter) and the payloads reassemble (reassemble_tar)
// to the input bit for bit, every input byte is reported exactly once, and
// TarEntryReader (the archive reader's walk) sees the same entries.
//
// Input: the tar.
#include "common/index/layer_index.h"
#include "common/tar/tar_metadata.h"
#include "common/tar/tar_split.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/fuzz_targets.h"

namespace deltasync::fuzz {

namespace {

constexpr std::string_view kTarget = "tar_split";

// Records what split_tar reports, and checks its promises as it goes.
class CheckingVisitor final : public TarVisitor {
 public:
  explicit CheckingVisitor(TarMetadataWriter& writer) : writer_(writer) {}
  Status on_entry(const TarEntry& entry) override {
    if (in_entry_) violation(kTarget, "on_entry before the previous entry's end");
    if (entry.offset != reported_)
      violation(kTarget, "entry offset " + std::to_string(entry.offset) + ", but " +
                             std::to_string(reported_) + " bytes were reported before it");
    if (entry.raw_metadata.empty() || entry.raw_metadata.size() % kTarBlock != 0)
      violation(kTarget, "an entry's metadata is not whole blocks");
    in_entry_ = true;
    payload_left_ = entry.size;
    reported_ += entry.raw_metadata.size();
    entries_.push_back(entry);
    entries_.back().raw_metadata.clear();  // compared separately; keep memory small
    return writer_.on_entry(entry);
  }
  Status on_payload(std::string_view chunk) override {
    if (!in_entry_ || chunk.size() > payload_left_)
      violation(kTarget, "payload beyond the entry's size");
    payload_left_ -= chunk.size();
    reported_ += chunk.size();
    return writer_.on_payload(chunk);
  }
  Status on_entry_end(std::string_view padding) override {
    if (!in_entry_ || payload_left_ != 0) violation(kTarget, "entry ended before its payload did");
    if ((reported_ + padding.size()) % kTarBlock != 0)
      violation(kTarget, "the padding does not end on a block boundary");
    in_entry_ = false;
    reported_ += padding.size();
    return writer_.on_entry_end(padding);
  }
  Status on_trailer(std::string_view bytes) override {
    if (in_entry_) violation(kTarget, "trailer inside an entry");
    reported_ += bytes.size();
    return writer_.on_trailer(bytes);
  }
  uint64_t reported() const { return reported_; }
  bool in_entry() const { return in_entry_; }
  const std::vector<TarEntry>& entries() const { return entries_; }

 private:
  TarMetadataWriter& writer_;
  bool in_entry_ = false;
  uint64_t payload_left_ = 0;
  uint64_t reported_ = 0;
  std::vector<TarEntry> entries_;
};

}  // namespace

int fuzz_tar_split(const uint8_t* data, size_t size) {
  const std::string_view tar(reinterpret_cast<const char*>(data), size);
  StringSink metadata, payloads;
  TarMetadataWriter writer(metadata, &payloads);
  CheckingVisitor visitor(writer);
  {
    MemorySource input(tar);
    if (!split_tar(input, visitor, "fuzz.tar")) return 0;
  }
  if (visitor.in_entry()) violation(kTarget, "split_tar succeeded inside an entry");
  if (visitor.reported() != tar.size())
    violation(kTarget, "split_tar reported " + std::to_string(visitor.reported()) + " of " +
                           std::to_string(tar.size()) + " bytes");
  if (!writer.finish()) violation(kTarget, "TarMetadataWriter::finish failed");
  if (writer.entry_count() != visitor.entries().size())
    violation(kTarget, "TarMetadataWriter counted another number of entries");

  // Reassembly is bit-exact.
  MemorySource metadata_in(metadata.data());
  MemorySource payloads_in(payloads.data());
  StreamPayloadProvider provider(payloads_in);
  StringSink rebuilt;
  Status reassembled = reassemble_tar(metadata_in, provider, rebuilt);
  if (!reassembled)
    violation(kTarget, "a split archive does not reassemble: " + reassembled.error().message());
  if (rebuilt.data() != tar) violation(kTarget, "reassembly is not bit-exact");

  // The entry walk the archive reader uses agrees with the splitter.
  MemorySource again(tar);
  TarEntryReader reader(again, "fuzz.tar", 4096);  // other read boundaries than split_tar's
  for (size_t i = 0;; ++i) {
    auto entry = reader.next();
    if (!entry)
      violation(kTarget,
                "TarEntryReader fails where split_tar did not: " + entry.error().message());
    if (!*entry) {
      if (i != visitor.entries().size())
        violation(kTarget, "TarEntryReader saw " + std::to_string(i) + " entries, split_tar " +
                               std::to_string(visitor.entries().size()));
      break;
    }
    if (i >= visitor.entries().size()) violation(kTarget, "TarEntryReader saw extra entries");
    const TarEntry& want = visitor.entries()[i];
    const TarEntry& got = **entry;
    if (got.path != want.path || got.size != want.size || got.type != want.type ||
        got.offset != want.offset || got.link_target != want.link_target)
      violation(kTarget, "TarEntryReader and split_tar disagree on entry " + std::to_string(i));
    // Records for the index are built from every entry (paths, links, modes).
    (void)file_record_from_entry(got, i);
    (void)got.normalized_path();
  }
  return 0;
}

}  // namespace deltasync::fuzz
