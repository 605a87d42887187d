// See pull_command.h for the steps. The per-reference state file
// (STORE/pulls/state/<hash>.json: the digest the tag named, the config and
// the engine's Id it was loaded as) makes an unchanged tag cost one HEAD per
// poll; it is a cache, checked against the engine before it is believed.
#include "receiver/pull/pull_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/bundle/bundle_file.h"
#include "common/engine/engine_client.h"
#include "common/engine/image_match.h"
#include "common/io/file.h"
#include "common/registry/registry_image.h"
#include "common/store/engine_image_import.h"
#include "common/util/human_units.h"
#include "receiver/apply/apply_command.h"
#include "receiver/pull/blob_fetch.h"
#include "receiver/pull/delta_discovery.h"
#include "receiver/pull/full_pull.h"

namespace deltasync {

namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

struct PullState {
  std::string named_digest;  // what the tag's HEAD gave
  std::string config_digest;
  std::string engine_id;
};

fs::path state_path(const PullOptions& options, const std::string& reference) {
  return options.store_dir / "pulls" / "state" /
         (Digest::of(reference).hex().substr(0, 32) + ".json");
}

std::optional<PullState> read_state(const fs::path& path) {
  auto text = read_small_file(path, 1 << 16);
  if (!text) return std::nullopt;
  Json j = Json::parse(*text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return PullState{j.value("named_digest", ""), j.value("config_digest", ""),
                   j.value("engine_id", "")};
}

Status write_state(const fs::path& path, const std::string& reference, const PullState& state) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec)
    return make_error(ErrorCode::kIo,
                      "creating " + path.parent_path().string() + ": " + ec.message());
  DS_ASSIGN_OR_RETURN(auto file, AtomicFile::create(path));
  Json j = {{"reference", reference},
            {"named_digest", state.named_digest},
            {"config_digest", state.config_digest},
            {"engine_id", state.engine_id}};
  DS_RETURN_IF_ERROR(file->write(j.dump(2)));
  DS_RETURN_IF_ERROR(file->finish());
  return file->publish();
}

// The engine's Id of the image with config `config`, if it holds it: found
// by config digest (classic store, Podman) or through the name it was
// pulled as (containerd-backed stores, whose Id is a manifest digest).
std::optional<std::string> engine_image_with_config(EngineClient& engine, const Digest& config,
                                                    const std::string& name,
                                                    const std::optional<PullState>& state) {
  auto by_id = engine.inspect_image(config.str());
  if (by_id && (by_id->id == config.str() || by_id->config_digest == config.str()))
    return by_id->id;
  auto by_name = engine.inspect_image(name);
  if (by_name) {
    if (by_name->id == config.str() || by_name->config_digest == config.str()) return by_name->id;
    if (state && state->config_digest == config.str() && state->engine_id == by_name->id)
      return by_name->id;
  }
  return std::nullopt;
}

// Config digests of the images the engine holds (for the per-basis tags).
std::vector<Digest> local_configs(EngineClient& engine) {
  std::vector<Digest> out;
  auto images = engine.list_images();
  if (!images) return out;
  for (const auto& image : *images) {
    if (out.size() >= kMaxTagProbes) break;
    std::string text = image.id;
    auto detail = engine.inspect_image(image.id);
    if (detail && !detail->config_digest.empty()) text = detail->config_digest;
    if (auto d = Digest::parse(text)) out.push_back(*d);
  }
  return out;
}

// Appends the seconds since `mark` to the report as phase `phase`, and
// moves the mark.
void end_phase(PullReport& report, std::chrono::steady_clock::time_point& mark, std::string phase) {
  auto now = std::chrono::steady_clock::now();
  report.phases.emplace_back(std::move(phase), std::chrono::duration<double>(now - mark).count());
  mark = now;
}

Result<std::string> apply_offer(RegistryClient& client, const std::string& repository,
                                const DeltaOffer& offer, const PullOptions& options,
                                const std::string& name, PullReport& report) {
  auto mark = std::chrono::steady_clock::now();
  fs::path dir = options.store_dir / "pulls" / offer.manifest_digest.hex().substr(0, 32);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(ErrorCode::kIo, "creating " + dir.string() + ": " + ec.message());
  BlobFetchStats stats;
  Status fetched = ok_status();
  for (size_t i = 0; i < offer.manifest.parts.size() && fetched; ++i) {
    const auto& part = offer.manifest.parts[i];
    char file[32];
    std::snprintf(file, sizeof file, "part-%04zu", i + 1);
    fetched = with_context(fetch_blob_to_file(client, repository, part.digest, part.size,
                                              dir / file, options.attempts, stats),
                           "delta part " + std::to_string(i + 1) + " of " +
                               std::to_string(offer.manifest.parts.size()));
  }
  report.bytes_fetched += stats.bytes_fetched;
  report.bytes_reused += stats.bytes_reused;
  report.resumes += stats.resumes;
  DS_RETURN_IF_ERROR(fetched);
  end_phase(report, mark, "fetch");
  // The bundle: the parts in order, checked against the whole's digest.
  fs::path bundle = dir / "bundle.dsb";
  {
    DS_ASSIGN_OR_RETURN(auto out, AtomicFile::create(bundle));
    HashingSink hashed(out.get());
    for (size_t i = 0; i < offer.manifest.parts.size(); ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "part-%04zu", i + 1);
      DS_ASSIGN_OR_RETURN(auto source, open_file_source(dir / file));
      DS_RETURN_IF_ERROR(copy_all(*source, hashed));
    }
    if (hashed.digest() != offer.config.bundle_digest)
      return make_error(ErrorCode::kVerifyFailed,
                        "delta " + offer.manifest_digest.str() +
                            ": its parts do not make the bundle its config names");
    DS_RETURN_IF_ERROR(out->finish());
    DS_RETURN_IF_ERROR(out->publish());
  }
  end_phase(report, mark, "assemble");
  ApplyOutcome outcome;
  ApplyCommandOptions apply;
  apply.bundle = bundle.string();
  apply.engine = options.engine;
  apply.ca = options.ca;
  apply.allowed_names = options.allowed_names;
  apply.trusted_keys = options.trusted_keys;
  apply.allow_unsigned = options.allow_unsigned;
  apply.extra_tags = {name};
  apply.outcome = &outcome;
  apply.store = options.store;
  apply.quiet = true;
  Status applied = run_apply_command(apply);
  report.phases.insert(report.phases.end(), outcome.phases.begin(), outcome.phases.end());
  DS_RETURN_IF_ERROR(applied);
  fs::remove_all(dir, ec);
  return outcome.engine_id;
}

bool store_holds(LayerStore& store, const RegistryImage& image) {
  for (const auto& d : image.diff_ids)
    if (!store.has(d)) return false;
  return store.read_config(image.config_digest).has_value();
}

}  // namespace

std::string PullReport::describe() const {
  std::string text = reference + ": " + outcome;
  if (outcome == "up to date") return text + " (" + manifest_digest + ")";
  text += " to " + manifest_digest + " (config " + config_digest + ")";
  if (outcome == "delta")
    text += ", delta from " + delta_from + " found by " + delta_found_by + ", " +
            human_bytes(delta_bytes);
  if (!fallback_reason.empty()) text += "; " + fallback_reason;
  text += "; " + human_bytes(bytes_fetched) + " fetched";
  if (bytes_reused) text += ", " + human_bytes(bytes_reused) + " resumed from disk";
  char seconds_text[32];
  std::snprintf(seconds_text, sizeof seconds_text, " in %.1fs", seconds);
  text += seconds_text;
  std::string phase_list;
  for (const auto& [phase, phase_seconds] : phases) {
    if (phase_seconds < 0.05) continue;
    std::snprintf(seconds_text, sizeof seconds_text, " %.1fs", phase_seconds);
    phase_list += (phase_list.empty() ? "" : ", ") + phase + seconds_text;
  }
  return phase_list.empty() ? text : text + " (" + phase_list + ")";
}

Result<PullReport> pull_once(const PullOptions& options) {
  auto started = std::chrono::steady_clock::now();
  DS_ASSIGN_OR_RETURN(RegistryReference where, RegistryReference::parse(options.reference));
  const std::string name = where.str();
  PullReport report;
  report.reference = name;
  DS_ASSIGN_OR_RETURN(auto client, RegistryClient::create(where.registry, options.registry));
  DS_ASSIGN_OR_RETURN(std::string address, resolve_engine_address(options.engine));
  EngineClient engine(EngineOptions{address});
  auto finish = [&](std::string outcome) {
    report.outcome = std::move(outcome);
    report.registry_requests = client->traffic().requests;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
  };

  // 1. One HEAD when nothing changed.
  fs::path state_file = state_path(options, name);
  auto state = read_state(state_file);
  auto mark = std::chrono::steady_clock::now();
  DS_ASSIGN_OR_RETURN(auto head, client->head_manifest(where.repository, where.reference()));
  end_phase(report, mark, "poll");
  if (!head)
    return make_error(ErrorCode::kNotFound,
                      "registry " + where.registry + " has no " + name +
                          " (was it published? deltasend publish ... --registry " + where.registry +
                          "/" + where.repository + ")");
  if (state && state->named_digest == head->digest.str() && !state->engine_id.empty()) {
    auto detail = engine.inspect_image(state->engine_id);
    if (detail) {
      report.manifest_digest = state->named_digest;
      report.config_digest = state->config_digest;
      report.engine_id = state->engine_id;
      return finish("up to date");
    }
  }

  // 2. What the tag names for this platform.
  DS_ASSIGN_OR_RETURN(auto resolved, resolve_registry_image(*client, where.repository,
                                                            where.reference(), options.platform));
  if (!resolved)
    return make_error(ErrorCode::kNotFound, "registry " + where.registry + " has no " + name);
  const RegistryImage& image = *resolved;
  report.manifest_digest = image.manifest.digest.str();
  report.config_digest = image.config_digest.str();
  PullState new_state{head->digest.str(), image.config_digest.str(), ""};
  auto held = engine_image_with_config(engine, image.config_digest, name, state);
  end_phase(report, mark, "resolve");
  if (held) {
    DS_RETURN_IF_ERROR(engine.tag_image(*held, name));
    // The image this site runs is the basis of the next delta: keep it in
    // the store now (one export, on the first round only), so that delta is
    // decoded without waiting for an export.
    if (options.store && !store_holds(*options.store, image)) {
      auto imported = import_engine_image(*options.store, engine, *held, image.diff_ids);
      if (!imported)
        spdlog::warn("{}: keeping it in the store as the next basis failed: {}", name,
                     imported.error().message());
    }
    new_state.engine_id = *held;
    report.engine_id = *held;
    DS_RETURN_IF_ERROR(write_state(state_file, name, new_state));
    return finish("up to date");
  }

  // 3-4. A delta from a basis the engine holds.
  std::string fallback;
  auto offers =
      discover_deltas(*client, where.repository, image.manifest.digest, local_configs(engine));
  end_phase(report, mark, "discover");
  if (!offers) {
    if (offers.error().code() == ErrorCode::kUnavailable ||
        offers.error().code() == ErrorCode::kTimeout)
      return std::unexpected(offers.error());
    fallback = "finding deltas failed: " + offers.error().message();
  } else {
    std::sort(offers->begin(), offers->end(), [](const DeltaOffer& a, const DeltaOffer& b) {
      return a.config.bundle_size < b.config.bundle_size;
    });
    const DeltaOffer* chosen = nullptr;
    for (const auto& offer : *offers) {
      if (offer.config.target.config_digest != image.config_digest) continue;
      auto base =
          find_image_with_layers(engine, offer.config.base.diff_ids, offer.config.base.reference,
                                 offer.config.base.config_digest.str());
      if (base) {
        chosen = &offer;
        break;
      }
    }
    if (!chosen) {
      fallback = offers->empty() ? "no delta is published for " + image.manifest.digest.str()
                                 : "none of the " + std::to_string(offers->size()) +
                                       " deltas published is from an image this site holds";
    } else {
      report.delta_from = chosen->config.base.config_digest.str();
      report.delta_found_by = chosen->found_by;
      report.delta_bytes = chosen->config.bundle_size;
      auto applied = apply_offer(*client, where.repository, *chosen, options, name, report);
      mark = std::chrono::steady_clock::now();
      if (applied) {
        new_state.engine_id = *applied;
        report.engine_id = *applied;
        DS_RETURN_IF_ERROR(write_state(state_file, name, new_state));
        return finish("delta");
      }
      // A cut link is retried next round (the parts stay); anything else
      // (a bad bundle, a refused signature, a basis that is not enough)
      // falls back to a plain pull now.
      if (applied.error().code() == ErrorCode::kUnavailable ||
          applied.error().code() == ErrorCode::kTimeout)
        return std::unexpected(applied.error());
      fallback = "the delta failed: " + applied.error().message();
      spdlog::warn("{}: {}; pulling the missing layers instead", name, fallback);
    }
  }
  if (!options.allow_full_pull)
    return make_error(ErrorCode::kNotFound, name + ": " + fallback + " (and full pulls are off)");

  // 5. A plain pull of what the engine lacks.
  report.fallback_reason = fallback;
  fs::path dir = options.store_dir / "pulls" / ("full-" + image.config_digest.hex().substr(0, 32));
  DS_ASSIGN_OR_RETURN(FullPullResult pulled,
                      full_pull(*client, where.repository, image, engine, {name}, dir,
                                options.attempts, options.store));
  report.bytes_fetched += pulled.fetch.bytes_fetched;
  report.bytes_reused += pulled.fetch.bytes_reused;
  report.resumes += pulled.fetch.resumes;
  end_phase(report, mark, "full pull");
  std::error_code ec;
  fs::remove_all(dir, ec);
  new_state.engine_id = pulled.engine_id;
  report.engine_id = pulled.engine_id;
  DS_RETURN_IF_ERROR(write_state(state_file, name, new_state));
  return finish("full pull");
}

Status run_pull_command(const PullOptions& options) {
  DS_ASSIGN_OR_RETURN(PullReport report, pull_once(options));
  if (options.json) {
    // Ordered, so the phases read in the order they ran.
    nlohmann::ordered_json out = {{"reference", report.reference},
                                  {"outcome", report.outcome},
                                  {"manifest_digest", report.manifest_digest},
                                  {"config_digest", report.config_digest},
                                  {"engine_image_id", report.engine_id},
                                  {"delta_from", report.delta_from},
                                  {"delta_found_by", report.delta_found_by},
                                  {"delta_bytes", report.delta_bytes},
                                  {"fallback_reason", report.fallback_reason},
                                  {"bytes_fetched", report.bytes_fetched},
                                  {"bytes_resumed", report.bytes_reused},
                                  {"registry_requests", report.registry_requests},
                                  {"resumes", report.resumes},
                                  {"seconds", report.seconds},
                                  {"phases", nlohmann::ordered_json::object()}};
    for (const auto& [phase, seconds] : report.phases)
      out["phases"][phase] = out["phases"].value(phase, 0.0) + seconds;
    std::printf("%s\n", out.dump(2).c_str());
  } else if (!options.quiet) {
    std::printf("%s\n", report.describe().c_str());
  }
  return ok_status();
}

}  // namespace deltasync
