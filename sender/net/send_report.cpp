#include "sender/net/send_report.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace deltasync {

namespace {

std::string format(const char* pattern, auto... args) {
  char text[512];
  std::snprintf(text, sizeof text, pattern, args...);
  return text;
}

// "local", "local (layer cache)", "remote", ...
std::string basis_words(const SendSummary& s) {
  return s.basis_source == "cache" ? s.mode + " (layer cache)" : s.mode;
}

double transfer_seconds(uint64_t bytes, double rate_bits_per_second) {
  return rate_bits_per_second > 0 ? static_cast<double>(bytes) * 8 / rate_bits_per_second : 0;
}

void print_dry_run(const SendCommandOptions& options, const SendSummary& s, double rate,
                   std::FILE* out) {
  std::fprintf(out, "%s -> %s (dry run, %s basis): nothing was sent\n", options.image.c_str(),
               s.site.c_str(), basis_words(s).c_str());
  if (s.already_loaded) {
    std::fprintf(out, "  the site already holds %s; a run would only apply the tags\n",
                 s.image_id.c_str());
  } else {
    std::fprintf(out, "  %-5s %-12s %10s  %-9s %10s %21s %10s %10s\n", "layer", "diff_id", "size",
                 "site has", "reused", "delta (source->coded)", "literal", "stream");
    for (const auto& l : s.layers) {
      std::string id = l.diff_id.substr(l.diff_id.find(':') + 1, 12);
      if (l.disposition == "engine" || l.disposition == "store") {
        std::fprintf(out, "  %-5u %-12s %10s  %-9s\n", l.position + 1, id.c_str(),
                     l.layer_bytes ? human_bytes(l.layer_bytes).c_str() : "",
                     l.disposition == "engine" ? "yes" : "in store");
        continue;
      }
      std::string delta = human_bytes(l.delta_source_bytes) + "->" + human_bytes(l.delta_bytes);
      std::fprintf(out, "  %-5u %-12s %10s  %-9s %10s %21s %10s %10s\n", l.position + 1, id.c_str(),
                   human_bytes(l.layer_bytes).c_str(), l.disposition == "resume" ? "partly" : "no",
                   human_bytes(l.reused_bytes).c_str(), delta.c_str(),
                   human_bytes(l.literal_bytes).c_str(), human_bytes(l.stream_bytes).c_str());
    }
  }
  std::string line =
      "  estimated on the wire: " + human_bytes(s.estimated_wire_bytes) + " (both directions)";
  if (rate > 0)
    line += ", " + human_duration(transfer_seconds(s.estimated_wire_bytes, rate)) + " at " +
            format("%.3g", rate / 1e6) + " Mbit/s";
  std::fprintf(out, "%s\n", line.c_str());
  if (s.pull_estimate_bytes > 0) {
    std::string pull =
        "  a registry pull of the missing layers: " + human_bytes(s.pull_estimate_bytes);
    if (rate > 0) pull += ", " + human_duration(transfer_seconds(s.pull_estimate_bytes, rate));
    if (s.estimated_wire_bytes > 0)
      pull += format(" (%.0fx more)", static_cast<double>(s.pull_estimate_bytes) /
                                          static_cast<double>(s.estimated_wire_bytes));
    std::fprintf(out, "%s\n", pull.c_str());
  }
}

void print_one(const SendCommandOptions& options, const SendSummary& s, std::FILE* out) {
  uint64_t wire = s.socket_bytes_sent + s.socket_bytes_received;
  if (s.already_loaded) {
    std::fprintf(out, "%s: already on %s (%s); tags applied. %s on the wire, %.1fs\n",
                 options.image.c_str(), s.site.c_str(), s.image_id.c_str(),
                 human_bytes(wire).c_str(), s.seconds);
    return;
  }
  std::fprintf(out, "%s -> %s: loaded and verified on the site (%s)\n", options.image.c_str(),
               s.site.c_str(), s.image_id.c_str());
  if (!s.site_engine_id.empty() && s.same_id_as_build_host()) {
    std::fprintf(out,
                 "  identity: the site's %s holds it as %s, the build host's own Id (config %s, "
                 "every blob rebuilt and its digest checked)\n",
                 s.site_image_store.c_str(), s.site_engine_id.c_str(), s.image_id.c_str());
  } else if (!s.site_engine_id.empty()) {
    if (!s.identity_note.empty()) std::fprintf(out, "  note: %s\n", s.identity_note.c_str());
    std::fprintf(out,
                 "  identity: config %s and every diff_id verified; the site's %s calls it %s "
                 "(the manifest deltarecvd wrote, with uncompressed layers)\n",
                 s.image_id.c_str(), s.site_image_store.c_str(), s.site_engine_id.c_str());
  }
  std::string line = "  on the wire: " + human_bytes(s.socket_bytes_sent) + " sent, " +
                     human_bytes(s.socket_bytes_received) + " received (" + human_bytes(wire) +
                     " in all)";
  if (s.pull_estimate_bytes > 0 && wire > 0)
    line += "; a registry pull: " + human_bytes(s.pull_estimate_bytes) +
            format(" (%.0fx more)",
                   static_cast<double>(s.pull_estimate_bytes) / static_cast<double>(wire));
  std::fprintf(out, "%s\n", line.c_str());
  std::fprintf(out, "  %llu layer%s sent (%s of layer data)%s, %s basis, %.1fs\n",
               static_cast<unsigned long long>(s.layers_sent), s.layers_sent == 1 ? "" : "s",
               human_bytes(s.missing_layer_bytes).c_str(), s.layers_resumed ? ", resumed" : "",
               basis_words(s).c_str(), s.seconds);
}

void print_table(const SendCommandOptions& options, const std::vector<SiteOutcome>& outcomes,
                 double rate, std::FILE* out) {
  std::fprintf(out, "%s to %zu sites%s:\n", options.image.c_str(), outcomes.size(),
               options.dry_run ? " (dry run)" : "");
  std::fprintf(out, "  %-24s %-8s %-11s %10s %10s %10s %8s\n", "site", "result", "basis",
               options.dry_run ? "estimate" : "on wire", "pull", options.dry_run ? "at rate" : "",
               "time");
  for (const auto& o : outcomes) {
    if (!o.summary) {
      std::fprintf(out, "  %-24s %-8s %s\n", o.site.c_str(), "FAILED",
                   o.summary.error().message().c_str());
      continue;
    }
    const SendSummary& s = *o.summary;
    uint64_t wire =
        options.dry_run ? s.estimated_wire_bytes : s.socket_bytes_sent + s.socket_bytes_received;
    std::string result = s.already_loaded ? "had it" : options.dry_run ? "asked" : "loaded";
    std::string at =
        options.dry_run && rate > 0 ? human_duration(transfer_seconds(wire, rate)) : "";
    std::string basis = s.basis_source == "cache" ? s.mode + "/cache" : s.mode;
    std::fprintf(out, "  %-24s %-8s %-11s %10s %10s %10s %7.1fs\n", o.site.c_str(), result.c_str(),
                 basis.c_str(), human_bytes(wire).c_str(),
                 s.pull_estimate_bytes ? human_bytes(s.pull_estimate_bytes).c_str() : "-",
                 at.c_str(), s.seconds);
  }
}

}  // namespace

Result<double> parse_rate(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(value > 0))
    return make_error(ErrorCode::kInvalidArgument,
                      "--rate " + text + ": give a rate such as 2mbit, 512kbit or 10MB/s");
  std::string unit(end);
  if (unit.ends_with("/s")) unit.resize(unit.size() - 2);
  std::string lower;
  for (char c : unit)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  // Bits: bit, kbit, mbit, gbit in any case (as tc writes them).
  static const std::pair<const char*, double> kBits[] = {
      {"", 1}, {"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}};
  for (const auto& [name, factor] : kBits)
    if (lower == name) return value * factor;
  // Bytes: an upper-case B (B, kB, KB, MB, GB, KiB, MiB, GiB).
  static const std::pair<const char*, double> kBytes[] = {{"B", 8},
                                                          {"kB", 8e3},
                                                          {"KB", 8e3},
                                                          {"MB", 8e6},
                                                          {"GB", 8e9},
                                                          {"KiB", 8 * 1024.0},
                                                          {"MiB", 8 * 1048576.0},
                                                          {"GiB", 8 * 1073741824.0}};
  for (const auto& [name, factor] : kBytes)
    if (unit == name) return value * factor;
  return make_error(ErrorCode::kInvalidArgument,
                    "--rate " + text + ": unknown unit '" + unit +
                        "'; use bit, kbit, mbit, gbit (bits per second) or B, kB, MB, GB, KiB, "
                        "MiB (bytes per second)");
}

nlohmann::json site_result_json(const SendCommandOptions& options, const SiteOutcome& outcome,
                                double rate) {
  nlohmann::json j = {{"site", outcome.site}, {"image", options.image}, {"to", outcome.site}};
  if (!outcome.summary) {
    j["ok"] = false;
    j["error"] = outcome.summary.error().message();
    return j;
  }
  const SendSummary& s = *outcome.summary;
  j.update({{"ok", true},
            {"dry_run", s.dry_run},
            {"image_id", s.image_id},
            {"config_digest", s.image_id},
            {"site_engine_image_id", s.site_engine_id.empty() ? s.image_id : s.site_engine_id},
            {"site_image_store", s.site_image_store},
            {"build_host_image_id", s.build_host_id},
            {"same_id_as_build_host", s.same_id_as_build_host()},
            {"identity_note", s.identity_note},
            {"verified_on_site", !s.dry_run},
            {"already_loaded", s.already_loaded},
            {"tls_session_resumed", s.tls_session_resumed},
            {"mode", s.mode},
            {"basis_source", s.basis_source},
            {"basis", s.basis},
            {"socket_bytes_sent", s.socket_bytes_sent},
            {"socket_bytes_received", s.socket_bytes_received},
            {"missing_layer_bytes", s.missing_layer_bytes},
            {"pull_estimate_bytes", s.pull_estimate_bytes},
            {"layers_sent", s.layers_sent},
            {"layers_resumed", s.layers_resumed},
            {"stream_bytes", s.stream_bytes},
            {"index_bytes", s.index_bytes},
            {"signature_bytes", s.signature_bytes},
            {"signature_rounds", s.signature_rounds},
            {"site_socket_bytes_received", s.site_socket_bytes_received},
            {"site_socket_bytes_sent", s.site_socket_bytes_sent},
            {"shared_encoding", s.shared_encoding},
            {"seconds", s.seconds}});
  if (s.dry_run) {
    j["estimated_wire_bytes"] = s.estimated_wire_bytes;
    if (rate > 0) {
      j["rate_bits_per_second"] = rate;
      j["estimated_seconds"] = transfer_seconds(s.estimated_wire_bytes, rate);
      j["pull_seconds"] = transfer_seconds(s.pull_estimate_bytes, rate);
    }
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : s.layers) {
    layers.push_back({{"layer", l.position + 1},
                      {"diff_id", l.diff_id},
                      {"layer_bytes", l.layer_bytes},
                      {"disposition", l.disposition},
                      {"reused_bytes", l.reused_bytes},
                      {"delta_source_bytes", l.delta_source_bytes},
                      {"delta_bytes", l.delta_bytes},
                      {"literal_bytes", l.literal_bytes},
                      {"stream_bytes", l.stream_bytes}});
  }
  j["layers"] = std::move(layers);
  return j;
}

int report_send_outcomes(const SendCommandOptions& options,
                         const std::vector<SiteOutcome>& outcomes, ProgressBoard& board,
                         double rate, bool quiet, std::FILE* out) {
  bool all_ok = true;
  for (const auto& o : outcomes) all_ok = all_ok && static_cast<bool>(o.summary);
  // Errors go to stderr in every style (--json and --quiet included); the
  // site is named when there are several (one site's errors name it already).
  board.clear();
  for (const auto& o : outcomes) {
    if (o.summary) continue;
    if (outcomes.size() == 1) {
      std::fprintf(stderr, "deltasend: error: %s\n", o.summary.error().message().c_str());
    } else {
      std::fprintf(stderr, "deltasend: error: %s: %s\n", o.site.c_str(),
                   o.summary.error().message().c_str());
    }
  }
  if (board.style() == ProgressStyle::kJson) {
    if (outcomes.size() == 1) {
      board.json_event("result", site_result_json(options, outcomes[0], rate));
    } else {
      nlohmann::json sites = nlohmann::json::array();
      for (const auto& o : outcomes) sites.push_back(site_result_json(options, o, rate));
      board.json_event("result", {{"ok", all_ok}, {"image", options.image}, {"sites", sites}});
    }
    return all_ok ? 0 : 1;
  }
  if (quiet && all_ok) return 0;
  if (outcomes.size() > 1) {
    print_table(options, outcomes, rate, out);
  } else if (outcomes[0].summary) {
    if (options.dry_run) {
      print_dry_run(options, *outcomes[0].summary, rate, out);
    } else if (!quiet) {
      print_one(options, *outcomes[0].summary, out);
    }
  }
  return all_ok ? 0 : 1;
}

}  // namespace deltasync
