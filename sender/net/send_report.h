// What `deltasend --to` prints when it is done: per site a summary (or, for
// a dry run, the per-layer plan and the estimate), one table for several
// sites, or the final JSON result object. Also the --rate parser.
//
// Thread safety: call from one thread after the sends have finished.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/util/result.h"
#include "sender/net/send_command.h"

namespace deltasync {

// "2mbit", "512kbit", "1.5Mbit/s", "10MB/s", "300KiB/s", "64000" (bits/s)
// -> bits per second.
Result<double> parse_rate(const std::string& text);

// The JSON of one site's outcome (the fields of the final result object).
nlohmann::json site_result_json(const SendCommandOptions& options, const SiteOutcome& outcome,
                                double rate_bits_per_second);

// Prints the outcomes: text on `out` (quiet: nothing on success), or the
// final JSON result through `board` (one object for one site; for several,
// an object with a "sites" array). Returns the exit status: 0 when every
// site succeeded.
int report_send_outcomes(const SendCommandOptions& options,
                         const std::vector<SiteOutcome>& outcomes, ProgressBoard& board,
                         double rate_bits_per_second, bool quiet, std::FILE* out = stdout);

}  // namespace deltasync
