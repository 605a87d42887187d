// Keeping the referrers tag schema's index current (distribution-spec 1.1,
// for registries without the referrers API): tag "sha256-<hex of the
// subject>" holds an OCI index of every manifest whose subject is that
// image. `deltasend publish` adds each delta it pushes.
//
// Each round reads the index, drops entries that do not belong there (their
// manifest is gone, does not hash to its digest, names another subject, or
// is a delta manifest that does not parse: referrer_entry_problem()), keeps
// every other referrer (other tools' signatures and SBOMs too), adds ours
// and PUTs it. Registries such as distribution 2.8 have no conditional PUT,
// so two publishers can overwrite each other's round. After its PUT a
// publisher waits a settle time (twice its own read-modify-write window,
// at least `settle`, plus jitter), reads the index again, and when its entry
// is missing runs another round (at most `max_rounds`, with jittered
// backoff). A publisher whose round another one overwrote thereby finds out
// as long as the other's window is shorter than its settle time.
//
// A tag holding something other than an OCI index is left alone (kCorrupt).
// A GET or PUT of the tag that meets kUnavailable (a 5xx: distribution
// 2.8's filesystem storage answers 500 to a GET of a tag another publisher
// is writing) is tried again a few times after a short jittered pause;
// other failures, and kUnavailable that persists, end the update. The delta
// stays findable through its per-basis tag (delta_tag()).
//
// Thread safety: uses the caller's client (one thread at a time); several
// updaters may run at once in other threads or processes, with their own
// clients.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/registry/registry_client.h"
#include "common/util/result.h"

namespace deltasync {

struct ReferrersTagOptions {
  int max_rounds = 6;
  std::chrono::milliseconds settle{300};   // at least this long before the re-read
  std::chrono::milliseconds backoff{200};  // before round n+1: up to n times this, jittered
};

struct ReferrersTagUpdate {
  int rounds = 0;                    // 1 when no one else wrote meanwhile
  std::vector<std::string> dropped;  // "sha256:...: why", entries removed as not belonging
  size_t entries = 0;                // in the index as last written
};

// Adds `entry` (a manifest whose subject is `subject`) to the referrers tag
// index of `subject` in `repository`, as described above.
Result<ReferrersTagUpdate> update_referrers_tag(RegistryClient& client,
                                                const std::string& repository,
                                                const Digest& subject,
                                                const RegistryDescriptor& entry,
                                                const ReferrersTagOptions& options = {});

}  // namespace deltasync
