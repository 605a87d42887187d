#include "sender/diffimage/layer_writer.h"

#include "common/io/file.h"
#include "common/tar/tar_entry.h"
#include "sender/diffimage/header_edit.h"

namespace deltasync {

Result<WrittenLayer> write_diff_layer(const DiffLayerPlan& plan,
                                      const std::vector<const LayerIndex*>& target_layers,
                                      const std::vector<int>& layer_fds, ByteSink& out) {
  using Op = PlannedEntry::Op;
  HashingSink hashing(&out);
  for (const PlannedEntry& e : plan.entries) {
    std::string what = "diff layer entry '" + e.path + "'";
    std::string header;
    switch (e.op) {
      case Op::kCopy:
        header = target_layers.at(e.layer)->entries.at(e.entry).raw_metadata;
        break;
      case Op::kRetype: {
        const std::string& raw = target_layers.at(e.layer)->entries.at(e.entry).raw_metadata;
        DS_ASSIGN_OR_RETURN(
            header,
            with_context(retype_tar_header(raw, e.type, e.payload_size, e.link_target), what));
        break;
      }
      case Op::kWhiteout:
      case Op::kOpaque: {
        // Like Docker's: an empty regular file; its owner, mode and time
        // are never applied (the runtime turns it into a deletion).
        TarHeaderSpec spec;
        spec.path = e.path;
        spec.mode = 0;
        header = build_tar_header(spec);
        break;
      }
    }
    DS_RETURN_IF_ERROR(hashing.write(header));
    if (e.payload_size > 0) {
      int fd = e.payload_layer < layer_fds.size() ? layer_fds[e.payload_layer] : -1;
      if (fd < 0) {
        return make_error(ErrorCode::kInternal,
                          what + ": layer " + std::to_string(e.payload_layer + 1) + " is not open");
      }
      FileSource payload(fd, e.payload_offset, e.payload_size, what);
      DS_RETURN_IF_ERROR(copy_exact(payload, hashing, e.payload_size, what));
      DS_RETURN_IF_ERROR(hashing.write(std::string(tar_padding(e.payload_size), '\0')));
    }
  }
  DS_RETURN_IF_ERROR(hashing.write(std::string(2 * kTarBlock, '\0')));
  return WrittenLayer{hashing.digest(), hashing.bytes()};
}

}  // namespace deltasync
