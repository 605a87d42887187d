#include "sender/net/status_command.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/net/frame_channel.h"
#include "common/protocol/wire_channel.h"
#include "sender/net/send_command.h"

namespace deltasync {

Status run_status_command(const StatusCommandOptions& options) {
  DS_ASSIGN_OR_RETURN(auto host_port, parse_host_port(options.to, 7443));
  ClientOptions client;
  client.identity = options.identity;
  client.host = host_port.first;
  client.port = host_port.second;
  DS_ASSIGN_OR_RETURN(auto channel, connect_channel(client));
  WireChannel wire(*channel);
  wire::SessionFrame request;
  request.mutable_status_request();
  DS_RETURN_IF_ERROR(wire.send(request));
  DS_ASSIGN_OR_RETURN(wire::SessionFrame frame,
                      wire.expect(wire::SessionFrame::kStatusReply, "receiver"));
  const wire::StatusReply& reply = frame.status_reply();
  if (options.json) {
    nlohmann::json images = nlohmann::json::array();
    for (const auto& image : reply.images()) {
      images.push_back(
          {{"image_id", image.image_id()},
           {"engine_image_id",
            image.engine_image_id().empty() ? image.image_id() : image.engine_image_id()},
           {"tags", std::vector<std::string>(image.tags().begin(), image.tags().end())},
           {"in_store", image.in_store()}});
    }
    nlohmann::json out = {
        {"receiver", options.to},
        {"version", reply.receiver_version()},
        {"healthy", reply.engine_ok()},
        {"engine", reply.engine()},
        {"engine_ok", reply.engine_ok()},
        {"image_store", reply.image_store()},
        {"store_bytes", reply.store_bytes()},
        {"store_budget", reply.store_budget()},
        {"stored_layers", reply.stored_layers()},
        {"active_sessions", reply.active_sessions()},
        {"images", images},
        {"recent", std::vector<std::string>(reply.recent().begin(), reply.recent().end())},
        {"watching", std::vector<std::string>(reply.watching().begin(), reply.watching().end())},
        {"indexer", reply.indexer()},
        {"session_exports", reply.session_exports()},
        {"indexer_exports", reply.indexer_exports()}};
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("%s (%s): %s\n", options.to.c_str(), reply.receiver_version().c_str(),
                reply.engine_ok() ? "healthy" : "UNHEALTHY: its engine does not answer");
    std::printf("  engine %s\n", reply.engine().c_str());
    std::printf("  store: %.1f MiB of %.1f MiB budget, %u layers; %u active sessions\n",
                static_cast<double>(reply.store_bytes()) / (1 << 20),
                static_cast<double>(reply.store_budget()) / (1 << 20), reply.stored_layers(),
                reply.active_sessions());
    std::printf("  images (%d):\n", reply.images_size());
    for (const auto& image : reply.images()) {
      std::string tags;
      for (const auto& tag : image.tags()) tags += (tags.empty() ? "" : ", ") + tag;
      std::printf("    %s  %s%s\n", image.image_id().substr(0, 19).c_str(),
                  tags.empty() ? "<untagged>" : tags.c_str(),
                  image.in_store() ? "  (in store)" : "");
    }
    if (!reply.indexer().empty()) std::printf("  indexer: %s\n", reply.indexer().c_str());
    std::printf("  exports from the engine: %u by sessions, %u by the indexer\n",
                reply.session_exports(), reply.indexer_exports());
    if (reply.watching_size() > 0) {
      std::printf("  pull mode, last poll of each watched tag:\n");
      for (const auto& line : reply.watching()) std::printf("    %s\n", line.c_str());
    }
    if (reply.recent_size() > 0) {
      std::printf("  recent transfers:\n");
      for (const auto& line : reply.recent()) std::printf("    %s\n", line.c_str());
    }
  }
  if (!reply.engine_ok())
    return make_error(ErrorCode::kUnavailable,
                      "the site's engine (" + reply.engine() + ") does not answer");
  return ok_status();
}

}  // namespace deltasync
