#include "common/index/layer_index.h"

#include "common/tar/tar_split.h"

namespace deltasync {

std::string_view file_kind_name(FileKind kind) {
  switch (kind) {
    case FileKind::kRegular:
      return "file";
    case FileKind::kDirectory:
      return "dir";
    case FileKind::kSymlink:
      return "symlink";
    case FileKind::kHardlink:
      return "hardlink";
    case FileKind::kCharDevice:
      return "char-device";
    case FileKind::kBlockDevice:
      return "block-device";
    case FileKind::kFifo:
      return "fifo";
    case FileKind::kOther:
      return "other";
  }
  return "other";
}

namespace {

FileKind kind_of(char type) {
  switch (type) {
    case '0':
    case '7':
      return FileKind::kRegular;
    case '1':
      return FileKind::kHardlink;
    case '2':
      return FileKind::kSymlink;
    case '3':
      return FileKind::kCharDevice;
    case '4':
      return FileKind::kBlockDevice;
    case '5':
      return FileKind::kDirectory;
    case '6':
      return FileKind::kFifo;
    default:
      return FileKind::kOther;
  }
}

}  // namespace

FileRecord file_record_from_entry(const TarEntry& e, uint64_t entry_index) {
  FileRecord r;
  r.path = e.normalized_path();
  r.kind = kind_of(e.type);
  r.size = e.size;
  r.link_target = r.kind == FileKind::kHardlink ? normalize_tar_path(e.link_target) : e.link_target;
  r.mode = e.mode;
  r.uid = e.uid;
  r.gid = e.gid;
  r.mtime = e.mtime;
  r.mtime_text = e.mtime_text;
  r.xattrs = e.xattrs;
  r.dev_major = e.dev_major;
  r.dev_minor = e.dev_minor;
  r.entry_index = entry_index;
  r.payload_offset = e.offset + e.raw_metadata.size();
  r.raw_metadata = e.raw_metadata;
  return r;
}

namespace {

class IndexingVisitor final : public TarVisitor {
 public:
  explicit IndexingVisitor(LayerIndex& index) : index_(index) {}
  Status on_entry(const TarEntry& e) override {
    index_.entries.push_back(file_record_from_entry(e, index_.entries.size()));
    return ok_status();
  }
  Status on_payload(std::string_view chunk) override {
    hasher_.update(chunk);
    return ok_status();
  }
  Status on_entry_end(std::string_view padding) override {
    FileRecord& r = index_.entries.back();
    if (r.kind == FileKind::kRegular || r.kind == FileKind::kOther) r.digest = hasher_.finish();
    total_ = r.payload_offset + r.size + padding.size();
    return ok_status();
  }
  Status on_trailer(std::string_view bytes) override {
    trailer_ += bytes.size();
    return ok_status();
  }
  uint64_t total() const { return total_ + trailer_; }

 private:
  LayerIndex& index_;
  Sha256 hasher_;
  uint64_t total_ = 0;
  uint64_t trailer_ = 0;
};

}  // namespace

Result<LayerIndex> build_layer_index(ByteSource& layer_tar, const Digest& diff_id,
                                     std::string_view name) {
  LayerIndex index;
  index.diff_id = diff_id;
  IndexingVisitor visitor(index);
  DS_RETURN_IF_ERROR(split_tar(layer_tar, visitor, name));
  // Drain whatever follows (split_tar reads to the end already; this makes
  // the verifying source report a digest mismatch even for odd archives).
  char probe;
  DS_ASSIGN_OR_RETURN(size_t extra, layer_tar.read(std::span<char>(&probe, 1)));
  if (extra != 0)
    return make_error(ErrorCode::kInternal, std::string(name) + ": bytes left after the archive");
  index.tar_size = visitor.total();
  return index;
}

}  // namespace deltasync
