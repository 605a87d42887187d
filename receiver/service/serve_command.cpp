#include "receiver/service/serve_command.h"

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/codec/go_gzip.h"
#include "common/engine/engine_client.h"
#include "common/net/frame_channel.h"
#include "common/protocol/wire_channel.h"
#include "common/store/layer_store.h"
#include "common/system/service_notify.h"
#include "receiver/service/engine_indexer.h"
#include "receiver/service/session.h"

namespace deltasync {

namespace {

Result<std::pair<std::string, uint16_t>> parse_listen(const std::string& text) {
  std::string host = text, port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(ErrorCode::kInvalidArgument, "--listen " + text + ": use [ADDR]:PORT");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos)
      return make_error(ErrorCode::kInvalidArgument, "--listen " + text + ": use ADDR:PORT");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535)
    return make_error(ErrorCode::kInvalidArgument, "--listen " + text + ": bad port");
  return std::make_pair(host.empty() ? std::string("0.0.0.0") : host, static_cast<uint16_t>(port));
}

// "12:00:05" (UTC), for the status lines of polls.
std::string clock_time_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &tm);
  return std::string(text) + "Z";
}

WatchOptions watch_options(const ServeOptions& options, const std::string& engine_address,
                           LayerStore* store) {
  WatchOptions watch;
  watch.references = options.watch;
  watch.interval = std::chrono::seconds(std::max(1, options.poll_interval_seconds));
  watch.pull = options.pull;
  watch.pull.engine = engine_address;
  watch.pull.store_dir = options.store;
  watch.pull.store = store;
  watch.pull.quiet = true;
  return watch;
}

// The background indexer, unless turned off. Stopped (its export or event
// wait cancelled) when the returned pointer is reset or destroyed.
std::unique_ptr<EngineIndexer> start_indexer(const ServeOptions& options,
                                             const std::string& engine_address,
                                             ServiceState& state) {
  if (!options.index_engine) {
    spdlog::info("indexer: off (--no-index-engine); a basis is exported when a session needs it");
    return nullptr;
  }
  IndexerOptions indexing;
  indexing.engine_address = engine_address;
  indexing.share_percent = options.index_share_percent;
  indexing.poll_interval = std::chrono::seconds(std::max(1, options.index_poll_interval_seconds));
  auto indexer = std::make_unique<EngineIndexer>(std::move(indexing), state);
  indexer->start();
  return indexer;
}

// Pull mode alone: no listener; the watch loop runs until SIGTERM/SIGINT.
Status run_pull_service(const ServeOptions& options, const std::string& engine_address,
                        LayerStore* store) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // the loop's thread inherits it
  WatchLoop loop(watch_options(options, engine_address, store));
  loop.start();
  ServiceState state;
  state.store = store;
  state.engine_address = engine_address;
  auto indexer = start_indexer(options, engine_address, state);
  std::string ready = "pull mode, store " + options.store + ", engine " + engine_address;
  spdlog::info("{}", ready);
  notify_ready(ready);
  // Wait for a signal, feeding systemd's watchdog (if the unit has one).
  auto watchdog = watchdog_interval();
  int received = -1;
  while (received < 0) {
    timespec wait{1, 0};
    received = sigtimedwait(&signals, nullptr, &wait);
    if (watchdog) notify_watchdog();
  }
  spdlog::info("signal {}: stopping", received);
  notify_stopping();
  indexer.reset();
  loop.stop();
  spdlog::info("stopped");
  return ok_status();
}

}  // namespace

Status run_serve_command(const ServeOptions& options) {
  DS_ASSIGN_OR_RETURN(auto listen, parse_listen(options.listen));
  DS_ASSIGN_OR_RETURN(uint64_t budget, parse_byte_size(options.store_budget));
  DS_ASSIGN_OR_RETURN(auto store, with_context(LayerStore::open(options.store, budget),
                                               "--store " + options.store));
  DS_ASSIGN_OR_RETURN(std::string engine_address, resolve_engine_address(options.engine));
  {
    EngineClient engine(EngineOptions{engine_address});
    if (auto ping = engine.ping(); !ping) {
      // Not fatal: the engine may start after us; sessions report it.
      spdlog::warn("engine {} is not answering yet: {}", engine_address, ping.error().message());
    }
  }

  for (const auto& reference : options.watch) {
    auto parsed = RegistryReference::parse(reference);
    if (!parsed) return std::unexpected(std::move(parsed.error()).with_context("--watch"));
  }
  if (!options.listener()) {
    if (options.watch.empty())
      return make_error(ErrorCode::kInvalidArgument,
                        "the service needs --cert, --key and --ca (to listen), or --watch "
                        "REG/REPO:TAG (pull mode), or both");
    return run_pull_service(options, engine_address, store.get());
  }

  ServiceState state;
  state.store = store.get();
  state.engine_address = engine_address;

  ServerOptions server_options;
  server_options.identity = options.identity;
  server_options.listen_address = listen.first;
  server_options.port = listen.second;
  server_options.allowed_client_names = options.allowed_clients;
  server_options.max_sessions = options.max_sessions;
  server_options.limits.io_timeout = std::chrono::seconds(options.io_timeout_seconds);
  DS_ASSIGN_OR_RETURN(
      auto server,
      FrameServer::bind(
          server_options, [&state](FrameChannel& channel) { serve_session(channel, state); },
          [](FrameChannel& channel) {
            WireChannel wire(channel);
            wire.send_error(Error(ErrorCode::kUnavailable,
                                  "the receiver is busy (too many sessions); try again later"));
          }));
  stop_on_signals(*server, {SIGTERM, SIGINT});

  std::string ready = "listening on " + listen.first + ":" + std::to_string(server->port()) +
                      ", store " + options.store + ", engine " + engine_address;
  spdlog::info("{}", ready);
  // What lets a containerd-store engine here hold the build host's own Id.
  spdlog::info("Go gzip helpers for the build host's blobs: {}", GoGzip::installed().describe());
  notify_ready(ready);
  // The watchdog is fed while the accept loop lives.
  std::atomic<bool> running{true};
  std::thread watchdog;
  if (auto interval = watchdog_interval()) {
    watchdog = std::thread([&running, period = *interval / 2] {
      while (running) {
        notify_watchdog();
        auto until = std::chrono::steady_clock::now() + period;
        while (running && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
  }
  std::unique_ptr<WatchLoop> watch;
  if (!options.watch.empty()) {
    WatchOptions watching = watch_options(options, engine_address, store.get());
    watching.on_round = [&state](const std::string& reference, const Result<PullReport>& round) {
      std::string when = clock_time_now();
      if (!round) {
        state.record_poll(reference,
                          reference + ": failed at " + when + ": " + round.error().message());
        return;
      }
      state.record_poll(reference, round->describe() + " at " + when);
      if (round->outcome != "up to date") state.record_transfer("pull " + round->describe());
    };
    watch = std::make_unique<WatchLoop>(std::move(watching));
    watch->start();
  }
  // After the listener is up: a sender that comes meanwhile is served (its
  // basis exported by its session, or waited for when the indexer has it).
  auto indexer = start_indexer(options, engine_address, state);
  server->run();
  notify_stopping();
  // A session waiting for the indexer's import of its basis held run() up
  // until that import ended; the next one is cancelled here.
  indexer.reset();
  if (watch) watch->stop();
  running = false;
  if (watchdog.joinable()) watchdog.join();
  spdlog::info("stopped");
  return ok_status();
}

}  // namespace deltasync
