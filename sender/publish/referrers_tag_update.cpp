// See referrers_tag_update.h. One round = GET the index, check the entries
// not checked yet (a GET of each manifest by digest), PUT; then the settle
// wait and the re-read that tells whether another publisher overwrote it.
#include "sender/publish/referrers_tag_update.h"

#include <algorithm>
#include <map>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/registry/delta_artifact.h"

namespace deltasync {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr int kTransientTries = 4;

bool transient(const Error& error) {
  return error.code() == ErrorCode::kUnavailable || error.code() == ErrorCode::kTimeout;
}

bool lists(const std::vector<RegistryDescriptor>& entries, const Digest& digest) {
  return std::any_of(entries.begin(), entries.end(),
                     [&](const RegistryDescriptor& d) { return d.digest == digest; });
}

class Updater {
 public:
  Updater(RegistryClient& client, const std::string& repository, const Digest& subject,
          const RegistryDescriptor& entry, const ReferrersTagOptions& options)
      : client_(client),
        repository_(repository),
        subject_(subject),
        entry_(entry),
        options_(options),
        tag_(referrers_tag(subject)),
        random_(std::random_device{}()) {}

  Result<ReferrersTagUpdate> run() {
    ReferrersTagUpdate out;
    for (out.rounds = 1; out.rounds <= options_.max_rounds; ++out.rounds) {
      auto started = Clock::now();
      DS_ASSIGN_OR_RETURN(std::vector<RegistryDescriptor> entries, merged(out));
      std::string index = referrers_index_json(entries);
      DS_RETURN_IF_ERROR(with_context(retrying([&] {
                                        return client_.put_manifest(repository_, tag_,
                                                                    media_type::kOciIndex, index);
                                      }),
                                      "referrers tag " + tag_));
      out.entries = entries.size();
      auto window = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
      sleep(std::max(2 * window, options_.settle) + jitter(options_.settle));
      DS_ASSIGN_OR_RETURN(std::vector<RegistryDescriptor> now, current());
      if (lists(now, entry_.digest)) return out;
      spdlog::warn(
          "{}:{}: another publisher overwrote the index without {} (round {} of {}); merging "
          "again",
          repository_, tag_, entry_.digest.short_str(), out.rounds, options_.max_rounds);
      sleep(jitter(options_.backoff * out.rounds));
    }
    return make_error(ErrorCode::kUnavailable,
                      "referrers tag " + repository_ + ":" + tag_ +
                          ": other publishers kept "
                          "overwriting it (" +
                          std::to_string(options_.max_rounds) +
                          " rounds); the delta is pushed and found through its own tag, run "
                          "publish again to list it");
  }

 private:
  // What the tag holds now (empty when absent).
  Result<std::vector<RegistryDescriptor>> current() {
    DS_ASSIGN_OR_RETURN(
        auto held, with_context(retrying([&] { return client_.get_manifest(repository_, tag_); }),
                                "referrers tag " + tag_));
    if (!held) return std::vector<RegistryDescriptor>{};
    return with_context(parse_referrers_tag_index(*held), repository_ + ":" + tag_);
  }

  // The index to write: what is there, less what does not belong, plus ours.
  Result<std::vector<RegistryDescriptor>> merged(ReferrersTagUpdate& out) {
    DS_ASSIGN_OR_RETURN(std::vector<RegistryDescriptor> held, current());
    std::vector<RegistryDescriptor> kept;
    for (const auto& d : held) {
      if (d.digest == entry_.digest || lists(kept, d.digest)) continue;  // ours, or a duplicate
      DS_ASSIGN_OR_RETURN(std::optional<std::string> problem, check(d));
      if (problem) {
        spdlog::warn("{}:{}: dropping {}: {}", repository_, tag_, d.digest.str(), *problem);
        out.dropped.push_back(d.digest.str() + ": " + *problem);
        continue;
      }
      kept.push_back(d);
    }
    kept.push_back(entry_);
    return kept;
  }

  // nullopt when `d` belongs in the index (remembered across rounds).
  Result<std::optional<std::string>> check(const RegistryDescriptor& d) {
    if (auto it = checked_.find(d.digest); it != checked_.end()) return it->second;
    std::optional<std::string> problem;
    auto manifest = client_.get_manifest(repository_, d.digest.str());
    if (!manifest) {
      if (transient(manifest.error())) return std::unexpected(manifest.error());
      problem = manifest.error().message();  // does not hash to its digest, or not a manifest
    } else if (!*manifest) {
      problem = "no such manifest in " + repository_;
    } else {
      problem = referrer_entry_problem(d, **manifest, subject_);
    }
    checked_[d.digest] = problem;
    return problem;
  }

  // `call` again after a kUnavailable, at most kTransientTries times: a
  // registry's 5xx while another publisher writes the same tag
  // (distribution 2.8's filesystem storage rewrites the tag's link in
  // place, and a GET meanwhile answers 500).
  template <class F>
  auto retrying(F&& call) -> decltype(call()) {
    for (int attempt = 1;; ++attempt) {
      auto result = call();
      if (result || result.error().code() != ErrorCode::kUnavailable || attempt >= kTransientTries)
        return result;
      spdlog::warn("{}:{}: {} (trying again)", repository_, tag_, result.error().message());
      sleep(milliseconds(50) + jitter(options_.backoff));
    }
  }

  milliseconds jitter(milliseconds up_to) {
    if (up_to.count() <= 0) return milliseconds(0);
    return milliseconds(std::uniform_int_distribution<long>(0, up_to.count())(random_));
  }
  static void sleep(milliseconds delay) { std::this_thread::sleep_for(delay); }

  RegistryClient& client_;
  const std::string& repository_;
  const Digest& subject_;
  const RegistryDescriptor& entry_;
  const ReferrersTagOptions& options_;
  std::string tag_;
  std::mt19937_64 random_;
  std::map<Digest, std::optional<std::string>> checked_;
};

}  // namespace

Result<ReferrersTagUpdate> update_referrers_tag(RegistryClient& client,
                                                const std::string& repository,
                                                const Digest& subject,
                                                const RegistryDescriptor& entry,
                                                const ReferrersTagOptions& options) {
  return Updater(client, repository, subject, entry, options).run();
}

}  // namespace deltasync
