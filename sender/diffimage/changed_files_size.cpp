#include "sender/diffimage/changed_files_size.h"

#include <map>
#include <set>

#include "common/codec/compression.h"
#include "common/io/file.h"
#include "common/tar/tar_entry.h"

namespace deltasync {

namespace {

char tar_type(FileKind kind) {
  switch (kind) {
    case FileKind::kDirectory:
      return '5';
    case FileKind::kSymlink:
      return '2';
    case FileKind::kCharDevice:
      return '3';
    case FileKind::kBlockDevice:
      return '4';
    case FileKind::kFifo:
      return '6';
    default:
      return '0';
  }
}

}  // namespace

Result<ChangedFilesSize> measure_changed_files(const DiffLayerPlan& plan, const ImageTree& target,
                                               const std::vector<int>& layer_fds) {
  std::map<std::string, const PlannedEntry*> planned;
  for (const auto& e : plan.entries) planned[e.path] = &e;
  std::set<std::string> listed;
  std::vector<std::string> removed_tops;
  for (const FileChange& c : plan.diff.changes) {
    if (c.change == ChangeKind::kAdded || c.change == ChangeKind::kChanged) listed.insert(c.path);
    if (c.change == ChangeKind::kRemoved &&
        (removed_tops.empty() || !c.path.starts_with(removed_tops.back() + "/"))) {
      removed_tops.push_back(c.path);
    }
  }

  CountingSink compressed;
  auto gzip = make_gzip_sink(compressed, 6);
  TeeCountSink counted(*gzip);
  ChangedFilesSize out;
  for (const auto& path : listed) {
    auto it = planned.find(path);
    const FileRecord& record = target.files.at(path);
    if (it == planned.end()) {
      return make_error(ErrorCode::kInternal, "changed-files size: '" + path + "' is not planned");
    }
    const PlannedEntry* e = it->second;
    TarHeaderSpec spec;
    spec.path = path;
    spec.mode = record.mode & 07777;
    spec.uid = record.uid;
    spec.gid = record.gid;
    spec.mtime = record.mtime;
    spec.type = tar_type(record.kind);
    if (record.kind == FileKind::kSymlink) spec.link_target = record.link_target;
    const PlannedEntry* content = e;
    if (e->is_hardlink()) {
      // A link to a file in the tar stays a link, else it carries the content.
      if (listed.count(e->link_target)) {
        spec.type = '1';
        spec.link_target = e->link_target;
        content = nullptr;
      } else {
        content = planned.at(e->link_target);
      }
    }
    uint64_t size = content && spec.type == '0' ? content->payload_size : 0;
    spec.size = size;
    DS_RETURN_IF_ERROR(counted.write(build_tar_header(spec)));
    if (size > 0) {
      int fd = content->payload_layer < layer_fds.size() ? layer_fds[content->payload_layer] : -1;
      if (fd < 0) return make_error(ErrorCode::kInternal, "changed-files size: layer not open");
      FileSource payload(fd, content->payload_offset, size, "changed file '" + path + "'");
      DS_RETURN_IF_ERROR(copy_exact(payload, counted, size, "changed file '" + path + "'"));
      DS_RETURN_IF_ERROR(counted.write(std::string(tar_padding(size), '\0')));
    }
    ++out.files;
  }
  std::string removed_list;
  for (const auto& p : removed_tops) removed_list += "/" + p + "\n";
  TarHeaderSpec spec;
  spec.path = ".removed";
  spec.size = removed_list.size();
  DS_RETURN_IF_ERROR(counted.write(build_tar_header(spec)));
  DS_RETURN_IF_ERROR(counted.write(removed_list));
  DS_RETURN_IF_ERROR(counted.write(std::string(tar_padding(removed_list.size()), '\0')));
  DS_RETURN_IF_ERROR(counted.write(std::string(2 * kTarBlock, '\0')));
  DS_RETURN_IF_ERROR(counted.finish());
  out.tar_bytes = counted.count();
  out.gzip_bytes = compressed.count();
  return out;
}

}  // namespace deltasync
