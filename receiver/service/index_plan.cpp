// See index_plan.h.
#include "receiver/service/index_plan.h"

#include <algorithm>
#include <tuple>

namespace deltasync {

std::vector<IndexCandidate> index_order(std::vector<IndexCandidate> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const IndexCandidate& a, const IndexCandidate& b) {
                     return std::make_tuple(!a.tagged, -a.created, a.engine_id) <
                            std::make_tuple(!b.tagged, -b.created, b.engine_id);
                   });
  return candidates;
}

uint64_t index_share_limit(uint64_t budget, unsigned share_percent) {
  share_percent = std::clamp(share_percent, 1u, 100u);
  // budget / 100 * share would lose up to 99 bytes; budget * share may overflow.
  return budget / 100 * share_percent + budget % 100 * share_percent / 100;
}

uint64_t index_estimate(uint64_t size) {
  return size + size / 8 + (1u << 20);
}

bool fits_index_share(uint64_t used, uint64_t size, uint64_t limit) {
  uint64_t estimate = index_estimate(size);
  return used <= limit && estimate <= limit - used;
}

}  // namespace deltasync
