// What a send tells the person or program that runs it, while it runs.
//
// One ProgressBoard per command run; one SiteProgress per site, made by
// board.site(). Sends report phases, layers and byte counts to their
// SiteProgress; the board turns them into one of four outputs:
//   kTerminal  stderr is a terminal: live lines redrawn in place (one per
//              site, plus the current layer when there is one site), each
//              with phase, bytes sent, rate and ETA; finished layers scroll
//              above them;
//   kLines     plain lines on stderr: one per phase and layer, and a
//              progress line every few seconds while a layer is sent;
//   kJson      newline-delimited JSON events on stdout (see docs/cli/
//              deltasend.md); the command prints the final result object;
//   kQuiet     nothing.
//
// Thread safety: every method of both classes may be called from any
// thread (the sites of a run send in parallel); output is serialised by the
// board. A SiteProgress borrows its board, which must outlive it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/util/human_units.h"

namespace deltasync {

enum class ProgressStyle { kTerminal, kLines, kJson, kQuiet };

// kTerminal when stderr is a terminal (and TERM is not "dumb"), else kLines;
// json and quiet win.
ProgressStyle choose_progress_style(bool json, bool quiet);

class ProgressBoard;

class SiteProgress {
 public:
  // phase: exporting, connecting, basis, signatures, sending, verifying,
  // loading, done (and what the site reports while it works).
  void phase(const std::string& phase, const std::string& detail = {});
  // Layer `position` (0-based) of `layer_count` starts: `bytes` of layer tar
  // to code, of which `first_byte` were already sent by an earlier run.
  void layer_started(uint32_t position, uint32_t layer_count, const std::string& short_id,
                     uint64_t bytes, uint64_t first_byte);
  // Layer tar bytes coded so far (of the current layer) and the socket
  // counters; cheap to call often (redraws are rate-limited).
  void layer_advanced(uint64_t layer_bytes_done, uint64_t socket_sent, uint64_t socket_received);
  void layer_finished(uint64_t stream_bytes, uint64_t socket_sent, uint64_t socket_received);
  // Total layer tar bytes this run will code, for the overall ETA.
  void set_total_bytes(uint64_t bytes);
  // The site is done (ok or not); its live line is retired.
  void finished(bool ok, const std::string& line);

  const std::string& label() const { return label_; }

 private:
  friend class ProgressBoard;
  SiteProgress(ProgressBoard& board, std::string label) : board_(board), label_(std::move(label)) {}

  ProgressBoard& board_;
  std::string label_;
  // Guarded by board_.mutex_.
  std::string phase_ = "starting";
  std::string detail_;
  uint32_t layer_position_ = 0;
  uint32_t layer_count_ = 0;
  std::string layer_id_;
  uint64_t layer_bytes_ = 0;
  uint64_t layer_done_ = 0;
  bool in_layer_ = false;
  uint64_t total_bytes_ = 0;  // all layers of this run
  uint64_t finished_bytes_ = 0;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
  bool done_ = false;
  // (seconds since start, socket bytes sent, layer bytes coded overall)
  struct Sample {
    double at;
    uint64_t sent;
    uint64_t coded;
  };
  std::deque<Sample> samples_;
  double last_line_at_ = -1e9;
};

class ProgressBoard {
 public:
  explicit ProgressBoard(ProgressStyle style, std::FILE* text_out = stderr,
                         std::FILE* json_out = stdout);
  ~ProgressBoard();  // clears the live lines
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  // A site's progress; `label` names it in lines and events ("edge-1").
  SiteProgress& site(const std::string& label);
  // Prints a JSON event line (kJson only; adds "event" and "t").
  void json_event(const std::string& event, nlohmann::json fields);
  // Prints a line that stays (text styles only), above the live lines.
  void print_line(const std::string& line);
  ProgressStyle style() const { return style_; }
  // Clears the live lines so that the caller can print below them.
  void clear();
  double elapsed() const;

 private:
  friend class SiteProgress;
  void changed(SiteProgress& site, bool force);  // called with mutex_ held
  void draw_locked(double now);
  void print_line_locked(const std::string& line);  // a line that stays
  void json_event_locked(const std::string& event, nlohmann::json fields);
  // Over the sample window: socket bytes sent per second, and the seconds
  // left at the recent coding rate (-1: unknown).
  struct Speed {
    bool known = false;
    double sent_per_second = 0;
    double eta_seconds = -1;
  };
  Speed speed_of(const SiteProgress& site, double now) const;
  std::string live_line(const SiteProgress& site, double now) const;
  std::string layer_line(const SiteProgress& site) const;

  ProgressStyle style_;
  std::FILE* text_out_;
  std::FILE* json_out_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<SiteProgress>> sites_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  size_t live_lines_ = 0;  // lines drawn below the cursor's line start
  double last_draw_ = -1e9;
  int width_ = 100;
};

}  // namespace deltasync
