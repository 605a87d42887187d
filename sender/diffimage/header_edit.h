// Changing the type of one tar entry while keeping every other header byte:
// a hard link whose partners are not all in a layer must become a regular
// file (or link to another member) there, with the owner, mode, times,
// names and PAX records (xattrs) of the header it came from.
//
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/util/result.h"

namespace deltasync {

// `raw` is an entry's metadata as it sits in a tar (extension headers, then
// the main header block). Returns it rewritten as a regular file of `size`
// payload bytes (type '0', `link_target` ignored) or as a hard link to
// `link_target` (type '1', `size` ignored). The link name moves between the
// ustar field and a PAX "linkpath" record as its length requires; GNU 'K'
// long-link records are dropped; the checksums are recomputed.
Result<std::string> retype_tar_header(std::string_view raw, char type, uint64_t size,
                                      std::string_view link_target);

}  // namespace deltasync
