#include "receiver/service/serve_command.h"

#include <csignal>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/codec/go_gzip.h"
#include "common/engine/engine_client.h"
#include "common/net/frame_channel.h"
#include "common/protocol/wire_channel.h"
#include "common/store/layer_store.h"
#include "common/system/service_notify.h"
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
  server->run();
  notify_stopping();
  running = false;
  if (watchdog.joinable()) watchdog.join();
  spdlog::info("stopped");
  return ok_status();
}

}  // namespace deltasync
