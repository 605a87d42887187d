// See engine_indexer.h. The loop: scan, then wait for an event (or the poll
// interval) and scan again; an engine error costs one retry interval and a
// rescan once it answers again (it may have restarted with other images).
// The first event wait resumes from before the first scan, so an image
// loaded while that scan ran is not missed.
#include "receiver/service/engine_indexer.h"

#include <algorithm>
#include <ctime>
#include <map>

#include <spdlog/spdlog.h>

#include "common/util/human_units.h"
#include "receiver/service/index_plan.h"

namespace deltasync {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string clock_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &tm);
  return std::string(text) + "Z";
}

std::string short_id(const std::string& id) {
  std::string hex = id.starts_with("sha256:") ? id.substr(7) : id;
  return hex.substr(0, 12);
}

}  // namespace

EngineIndexer::EngineIndexer(IndexerOptions options, ServiceState& state)
    : options_(std::move(options)), state_(state) {}

EngineIndexer::~EngineIndexer() {
  stop();
}

void EngineIndexer::start() {
  publish_status("");
  thread_ = std::thread([this] { run(); });
}

void EngineIndexer::stop() {
  {
    std::lock_guard guard(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool EngineIndexer::sleep_for(std::chrono::seconds duration) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [this] { return stop_.load(); });
}

void EngineIndexer::publish_status(const std::string& last) {
  if (!last.empty()) last_ = last;
  std::string line = mode_ + ": " + std::to_string(images_indexed_) + " images indexed (" +
                     human_bytes(bytes_indexed_) + "), " + std::to_string(images_held_) +
                     " held already, " + std::to_string(images_over_share_) +
                     " beyond its share (" + std::to_string(options_.share_percent) +
                     "% of the store's budget)";
  if (!last_.empty()) line += "; last: " + last_;
  state_.record_indexer(std::move(line));
}

void EngineIndexer::run() {
  EngineOptions engine_options{options_.engine_address};
  engine_options.cancel = &stop_;
  EngineClient engine(engine_options);
  int64_t since = now_ns();
  bool need_scan = true;
  bool polling = false;
  bool reported_error = false;
  while (!stop_) {
    if (need_scan) {
      bool first = mode_ == "starting";
      need_scan = !scan(engine);
      if (first && !need_scan)
        spdlog::info(
            "indexer: start-up scan done: {} images indexed, {} held already, {} beyond "
            "its share; now waiting for new images",
            images_indexed_, images_held_, images_over_share_);
      if (stop_) break;
      if (need_scan) {
        if (!sleep_for(options_.retry_interval)) break;
        continue;
      }
    }
    if (polling) {
      if (!sleep_for(options_.poll_interval)) break;
      need_scan = true;
      continue;
    }
    auto waited = engine.wait_image_event(since, options_.event_window);
    if (stop_) break;
    if (!waited) {
      if (waited.error().code() == ErrorCode::kUnsupported) {
        polling = true;
        mode_ = "polling every " + std::to_string(options_.poll_interval.count()) + "s";
        spdlog::info("indexer: {}; polling the engine's image list every {}s instead",
                     waited.error().message(), options_.poll_interval.count());
        publish_status("");
        continue;
      }
      if (!reported_error)
        spdlog::warn("indexer: waiting for the engine's image events: {}",
                     waited.error().message());
      reported_error = true;
      need_scan = true;
      if (!sleep_for(options_.retry_interval)) break;
      continue;
    }
    reported_error = false;
    since = waited->resume_after_ns;
    if (waited->changed) {
      spdlog::debug("indexer: engine event {}", waited->what);
      need_scan = true;
    }
  }
  spdlog::debug("indexer: stopped");
}

bool EngineIndexer::scan(EngineClient& engine) {
  if (mode_ == "starting") mode_ = "events";
  auto images = engine.list_images();
  if (!images) {
    if (images.error().code() != ErrorCode::kCancelled)
      spdlog::warn("indexer: listing the engine's images: {}", images.error().message());
    return false;
  }
  LayerStore& store = *state_.store;
  std::vector<IndexCandidate> candidates;
  std::map<std::string, std::vector<Digest>> chains;
  for (const auto& summary : *images) {
    if (stop_) return true;
    auto detail = engine.inspect_image(summary.id);
    if (!detail) continue;  // removed meanwhile
    std::vector<Digest> chain;
    for (const auto& text : detail->diff_ids) {
      auto d = Digest::parse(text);
      if (!d) break;
      chain.push_back(*d);
    }
    if (chain.empty() || chain.size() != detail->diff_ids.size()) continue;
    IndexCandidate c;
    c.engine_id = summary.id;
    for (const auto& tag : summary.repo_tags) {
      if (tag == "<none>:<none>") continue;
      c.tagged = true;
      if (c.name.empty()) c.name = tag;
    }
    if (c.name.empty()) c.name = short_id(summary.id);
    c.created = summary.created;
    c.size = static_cast<uint64_t>(std::max<int64_t>(0, summary.size));
    c.held = BasisImports::held(store, summary.id, chain).has_value();
    chains[summary.id] = std::move(chain);
    candidates.push_back(std::move(c));
  }
  size_t held = 0, over_share = 0;
  std::string last;
  uint64_t limit = index_share_limit(store.budget(), options_.share_percent);
  for (const auto& c : index_order(std::move(candidates))) {
    if (stop_) break;
    if (c.held) {
      ++held;
      continue;
    }
    if (!fits_index_share(store.bytes_used(), c.size, limit)) {
      ++over_share;
      if (reported_over_share_.insert(c.engine_id).second)
        spdlog::info(
            "indexer: not indexing {} ({}): about {} would take the store beyond the indexer's "
            "share, {} of {} ({} used)",
            c.name, short_id(c.engine_id), human_bytes(index_estimate(c.size)), human_bytes(limit),
            human_bytes(store.budget()), human_bytes(store.bytes_used()));
      continue;
    }
    auto started = std::chrono::steady_clock::now();
    auto outcome = state_.basis_imports.ensure(
        store, engine, c.engine_id, chains[c.engine_id], BasisImports::Who::kIndexer,
        [&] { spdlog::info("indexer: {} is being imported by a session; waiting", c.name); }, {},
        &stop_);
    if (!outcome) {
      if (outcome.error().code() == ErrorCode::kCancelled) break;
      spdlog::warn("indexer: {} ({}): {}", c.name, short_id(c.engine_id),
                   outcome.error().message());
      continue;
    }
    if (!outcome->exported) {
      ++held;
      continue;
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ++images_indexed_;
    bytes_indexed_ += outcome->import.bytes_imported;
    spdlog::info("indexer: indexed {} ({}): {} of {} layers, {} into the store in {:.1f}s", c.name,
                 short_id(c.engine_id), outcome->import.layers_imported,
                 outcome->import.chain.size(), human_bytes(outcome->import.bytes_imported),
                 seconds);
    last = "indexed " + c.name + " at " + clock_now();
    // The estimate errs high, so this evicts nothing unless the store was
    // filled meanwhile by sessions; it keeps the budget a hard bound anyway.
    if (auto enforced = store.enforce_budget(); !enforced)
      spdlog::warn("indexer: {}", enforced.error().message());
  }
  images_held_ = held;
  images_over_share_ = over_share;
  publish_status(last);
  return true;
}

}  // namespace deltasync
