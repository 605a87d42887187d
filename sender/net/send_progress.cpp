// Progress output. Rates and ETAs come from a sliding window of samples
// (the last few seconds) rather than from the start of the run, so that a
// link that slows down, or a long basis export before the first byte, does
// not skew them. The ETA divides the layer bytes still to code by the
// recent coding rate: the encoder writes to the socket synchronously, so on
// a slow link that rate is the link's, and on a fast one it is the CPU's.
#include "sender/net/send_progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace deltasync {

namespace {

constexpr double kWindowSeconds = 5.0;
constexpr double kTerminalRedrawSeconds = 0.1;
constexpr double kLinePeriodSeconds = 5.0;
constexpr double kJsonPeriodSeconds = 1.0;

int terminal_width(std::FILE* out) {
  winsize size{};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col >= 20) return size.ws_col;
  return 100;
}

std::string fit(std::string line, int width) {
  if (static_cast<int>(line.size()) >= width) line.resize(static_cast<size_t>(width - 1));
  return line;
}

std::string format(const char* pattern, auto... args) {
  char text[256];
  std::snprintf(text, sizeof text, pattern, args...);
  return text;
}

}  // namespace

ProgressStyle choose_progress_style(bool json, bool quiet) {
  if (json) return ProgressStyle::kJson;
  if (quiet) return ProgressStyle::kQuiet;
  const char* term = std::getenv("TERM");
  if (isatty(STDERR_FILENO) && !(term && std::strcmp(term, "dumb") == 0))
    return ProgressStyle::kTerminal;
  return ProgressStyle::kLines;
}

// ---- SiteProgress ----------------------------------------------------------

void SiteProgress::phase(const std::string& phase, const std::string& detail) {
  std::lock_guard lock(board_.mutex_);
  phase_ = phase;
  detail_ = detail;
  if (board_.style_ == ProgressStyle::kJson) {
    nlohmann::json fields = {{"site", label_}, {"phase", phase}};
    if (!detail.empty()) fields["detail"] = detail;
    board_.json_event_locked("phase", std::move(fields));
    return;
  }
  if (board_.style_ == ProgressStyle::kLines || board_.style_ == ProgressStyle::kTerminal) {
    std::string prefix = board_.sites_.size() > 1 ? label_ + ": " : std::string();
    board_.print_line_locked(format("[%6.1fs] ", board_.elapsed()) + prefix + phase +
                             (detail.empty() ? std::string() : " " + detail));
  }
  board_.changed(*this, true);
}

void SiteProgress::set_total_bytes(uint64_t bytes) {
  std::lock_guard lock(board_.mutex_);
  total_bytes_ = bytes;
}

void SiteProgress::layer_started(uint32_t position, uint32_t layer_count,
                                 const std::string& short_id, uint64_t bytes, uint64_t first_byte) {
  std::lock_guard lock(board_.mutex_);
  layer_position_ = position;
  layer_count_ = layer_count;
  layer_id_ = short_id;
  layer_bytes_ = bytes;
  layer_done_ = std::min(first_byte, bytes);
  in_layer_ = true;
  phase_ = "sending";
  detail_.clear();
  if (board_.style_ == ProgressStyle::kJson) {
    board_.json_event_locked("layer_start", {{"site", label_},
                                             {"layer", position + 1},
                                             {"layers", layer_count},
                                             {"diff_id", short_id},
                                             {"layer_bytes", bytes},
                                             {"resume_at_byte", first_byte}});
    return;
  }
  std::string prefix = board_.sites_.size() > 1 ? label_ + ": " : std::string();
  board_.print_line_locked(
      format("[%6.1fs] ", board_.elapsed()) + prefix +
      format("sending layer %u/%u ", position + 1, layer_count) + short_id + " (" +
      human_bytes(bytes) +
      (first_byte > 0 ? ", resuming at " + human_bytes(first_byte) : std::string()) + ")");
  board_.changed(*this, true);
}

void SiteProgress::layer_advanced(uint64_t layer_bytes_done, uint64_t socket_sent,
                                  uint64_t socket_received) {
  std::lock_guard lock(board_.mutex_);
  layer_done_ = std::min(layer_bytes_done, layer_bytes_);
  sent_ = socket_sent;
  received_ = socket_received;
  board_.changed(*this, false);
}

void SiteProgress::layer_finished(uint64_t stream_bytes, uint64_t socket_sent,
                                  uint64_t socket_received) {
  std::lock_guard lock(board_.mutex_);
  finished_bytes_ += layer_bytes_;
  layer_done_ = layer_bytes_;
  in_layer_ = false;
  sent_ = socket_sent;
  received_ = socket_received;
  if (board_.style_ == ProgressStyle::kJson) {
    board_.json_event_locked("layer_done", {{"site", label_},
                                            {"layer", layer_position_ + 1},
                                            {"stream_bytes", stream_bytes},
                                            {"socket_bytes_sent", socket_sent},
                                            {"socket_bytes_received", socket_received}});
    return;
  }
  board_.changed(*this, true);
}

void SiteProgress::finished(bool ok, const std::string& line) {
  std::lock_guard lock(board_.mutex_);
  done_ = true;
  in_layer_ = false;
  phase_ = ok ? "done" : "failed";
  if (board_.style_ == ProgressStyle::kTerminal || board_.style_ == ProgressStyle::kLines) {
    if (!line.empty()) board_.print_line_locked(line);
  }
  board_.changed(*this, true);
}

// ---- ProgressBoard ----------------------------------------------------------

ProgressBoard::ProgressBoard(ProgressStyle style, std::FILE* text_out, std::FILE* json_out)
    : style_(style), text_out_(text_out), json_out_(json_out) {
  if (style_ == ProgressStyle::kTerminal) width_ = terminal_width(text_out_);
}

ProgressBoard::~ProgressBoard() {
  clear();
}

SiteProgress& ProgressBoard::site(const std::string& label) {
  std::lock_guard lock(mutex_);
  sites_.push_back(std::unique_ptr<SiteProgress>(new SiteProgress(*this, label)));
  return *sites_.back();
}

double ProgressBoard::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void ProgressBoard::json_event(const std::string& event, nlohmann::json fields) {
  std::lock_guard lock(mutex_);
  json_event_locked(event, std::move(fields));
}

void ProgressBoard::print_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (style_ == ProgressStyle::kTerminal || style_ == ProgressStyle::kLines)
    print_line_locked(line);
}

void ProgressBoard::json_event_locked(const std::string& event, nlohmann::json fields) {
  if (style_ != ProgressStyle::kJson) return;
  fields["event"] = event;
  fields["t"] = std::round(elapsed() * 1000) / 1000;
  std::fprintf(json_out_, "%s\n", fields.dump().c_str());
  std::fflush(json_out_);
}

void ProgressBoard::clear() {
  std::lock_guard lock(mutex_);
  if (style_ != ProgressStyle::kTerminal || live_lines_ == 0) return;
  std::fprintf(text_out_, "\x1b[%zuA\r\x1b[J", live_lines_);
  std::fflush(text_out_);
  live_lines_ = 0;
}

void ProgressBoard::print_line_locked(const std::string& line) {
  if (style_ == ProgressStyle::kTerminal && live_lines_ > 0) {
    std::fprintf(text_out_, "\x1b[%zuA\r\x1b[J", live_lines_);
    live_lines_ = 0;
  }
  std::fprintf(text_out_, "%s\n", line.c_str());
  if (style_ == ProgressStyle::kTerminal) draw_locked(elapsed());
  std::fflush(text_out_);
}

void ProgressBoard::changed(SiteProgress& site, bool force) {
  const double now = elapsed();
  // The sample window for rate and ETA.
  uint64_t coded = site.finished_bytes_ + (site.in_layer_ ? site.layer_done_ : 0);
  if (site.samples_.empty() || now - site.samples_.back().at >= 0.05) {
    site.samples_.push_back({now, site.sent_, coded});
    while (site.samples_.size() > 2 && now - site.samples_[1].at > kWindowSeconds)
      site.samples_.pop_front();
  }
  switch (style_) {
    case ProgressStyle::kQuiet:
      return;
    case ProgressStyle::kTerminal:
      if (force || now - last_draw_ >= kTerminalRedrawSeconds) {
        draw_locked(now);
        std::fflush(text_out_);
      }
      return;
    case ProgressStyle::kLines:
      if (site.in_layer_ && !force && now - site.last_line_at_ >= kLinePeriodSeconds) {
        site.last_line_at_ = now;
        std::string prefix = sites_.size() > 1 ? site.label_ + ": " : std::string();
        std::fprintf(
            text_out_, "%s\n",
            (format("[%6.1fs] ", now) + prefix + layer_line(site) + ", " + live_line(site, now))
                .c_str());
        std::fflush(text_out_);
      } else if (force) {
        site.last_line_at_ = now;
      }
      return;
    case ProgressStyle::kJson:
      if (site.in_layer_ && !force && now - site.last_line_at_ >= kJsonPeriodSeconds) {
        site.last_line_at_ = now;
        Speed speed = speed_of(site, now);
        nlohmann::json fields = {{"site", site.label_},
                                 {"layer", site.layer_position_ + 1},
                                 {"layer_bytes_done", site.layer_done_},
                                 {"layer_bytes", site.layer_bytes_},
                                 {"socket_bytes_sent", site.sent_},
                                 {"socket_bytes_received", site.received_},
                                 {"rate_bytes_per_second", std::round(speed.sent_per_second)}};
        if (speed.eta_seconds >= 0) fields["eta_seconds"] = std::round(speed.eta_seconds * 10) / 10;
        json_event_locked("progress", std::move(fields));
      }
      return;
  }
}

std::string ProgressBoard::layer_line(const SiteProgress& site) const {
  double fraction = site.layer_bytes_ > 0 ? static_cast<double>(site.layer_done_) /
                                                static_cast<double>(site.layer_bytes_)
                                          : 1.0;
  return format("layer %u/%u ", site.layer_position_ + 1, site.layer_count_) + site.layer_id_ +
         format(" %3.0f%% ", fraction * 100) + "(" + human_bytes(site.layer_done_) + " of " +
         human_bytes(site.layer_bytes_) + ")";
}

ProgressBoard::Speed ProgressBoard::speed_of(const SiteProgress& site, double now) const {
  Speed speed;
  if (site.samples_.size() < 2) return speed;
  const auto& a = site.samples_.front();
  const auto& b = site.samples_.back();
  double span = std::max(b.at, now) - a.at;
  if (span <= 0.2) return speed;  // too short to mean anything
  speed.known = true;
  speed.sent_per_second = static_cast<double>(b.sent - a.sent) / span;
  double coding = static_cast<double>(b.coded - a.coded) / span;
  uint64_t coded = site.finished_bytes_ + (site.in_layer_ ? site.layer_done_ : 0);
  if (site.in_layer_ && coding > 0 && site.total_bytes_ >= coded)
    speed.eta_seconds = static_cast<double>(site.total_bytes_ - coded) / coding;
  return speed;
}

std::string ProgressBoard::live_line(const SiteProgress& site, double now) const {
  std::string line = human_bytes(site.sent_) + " sent";
  Speed speed = speed_of(site, now);
  if (speed.known) line += ", " + human_bytes(static_cast<uint64_t>(speed.sent_per_second)) + "/s";
  if (speed.eta_seconds >= 0) line += ", ETA " + human_duration(speed.eta_seconds);
  return line;
}

void ProgressBoard::draw_locked(double now) {
  last_draw_ = now;
  if (live_lines_ > 0) std::fprintf(text_out_, "\x1b[%zuA", live_lines_);
  std::vector<std::string> lines;
  const bool one_site = sites_.size() == 1;
  for (const auto& site : sites_) {
    if (site->done_) continue;
    std::string head = one_site ? std::string() : site->label_ + "  ";
    if (site->in_layer_) {
      if (one_site) {
        lines.push_back("  " + layer_line(*site));
        lines.push_back(head + site->phase_ + ": " + live_line(*site, now));
      } else {
        lines.push_back(head + layer_line(*site) + ", " + live_line(*site, now));
      }
    } else {
      lines.push_back(head + site->phase_ + (site->detail_.empty() ? "" : " " + site->detail_) +
                      (site->sent_ > 0 ? " (" + human_bytes(site->sent_) + " sent)" : ""));
    }
  }
  for (const auto& line : lines)
    std::fprintf(text_out_, "\r\x1b[2K%s\n", fit(line, width_).c_str());
  // Lines left over from a longer drawing.
  if (lines.size() < live_lines_) std::fprintf(text_out_, "\x1b[J");
  live_lines_ = lines.size();
}

}  // namespace deltasync
