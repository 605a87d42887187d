// Container-engine client: the Docker Engine API over its unix socket with
// Boost.Beast HTTP/1.1; see engine_client.h.
//
// Every call opens one connection (beast::basic_stream over
// asio::local::stream_protocol) on a private io_context. The asynchronous
// operations are run to completion one at a time, each with a deadline of
// EngineOptions::io_timeout set on the stream, so a hung engine becomes a
// kTimeout error instead of a hung process. Large bodies are streamed:
// `docker save` output is parsed into a fixed 1 MiB buffer (buffer_body) and
// handed to the ByteSink chunk by chunk; a load is sent with chunked transfer
// encoding from the ByteSource. Nothing here throws to the caller: Boost and
// JSON exceptions are caught at the public functions and become Errors.
//
// The API version is negotiated once per client from /_ping's API-Version
// header (the older of the engine's and kMaxApiVersion) and used as the path
// prefix ("/v1.41/images/..."), like the docker CLI does.
//
// Cancellation (EngineOptions::cancel): while an operation runs, the
// io_context is run in 100 ms slices and the flag checked between them; once
// it is set the stream's pending operation is cancelled and the call ends
// with kCancelled. That is how the service's indexer leaves an export or an
// idle event stream at once on SIGTERM.
//
// Image events (wait_image_event): GET /events with since/until, so each wait
// is one bounded request that the engine itself ends at `until`; the first
// image arrival ends it early. Lines are parsed by image_events.h.
//
// Thread safety: as the header says, one call at a time per client (the
// negotiated version is cached in the client without a lock).
#include "common/engine/engine_backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/engine/engine_detail.h"
#include "common/engine/image_events.h"

namespace deltasync {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using Json = nlohmann::json;

namespace {

constexpr std::string_view kUnixScheme = "unix://";
constexpr size_t kMaxSocketPath = 107;             // sun_path minus its NUL
constexpr uint64_t kSmallBodyLimit = 64ull << 20;  // JSON answers (image lists)
constexpr size_t kErrorBodyLimit = 1 << 20;        // error bodies of streamed calls
constexpr const char* kUserAgent = "deltasync/0.1";

std::string lower_first(std::string text) {
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] + 32);
  return text;
}

// What to check when nothing answers at `address`: Podman's API service is a
// separate unit from podman itself, so name it for Podman's sockets.
std::string unavailable_hint(const std::string& address) {
  if (address.find("podman") != std::string::npos) {
    return " (is Podman's API service running? systemctl enable --now podman.socket, or "
           "podman system service; else use --engine unix://PATH or DOCKER_HOST)";
  }
  return " (is dockerd running? use --engine unix://PATH or DOCKER_HOST)";
}

// One HTTP exchange with the engine: connect, write, read, each under the
// deadline. Owns the io_context and socket for the call.
class Connection {
 public:
  Connection(const EngineOptions& options, std::string_view what)
      : options_(options), what_(what), stream_(ioc_) {}

  Status connect() {
    if (!options_.address.starts_with(kUnixScheme)) {
      return make_error(ErrorCode::kUnsupported, "engine address '" + options_.address +
                                                     "': only unix:// addresses are supported");
    }
    std::string path = options_.address.substr(kUnixScheme.size());
    if (path.empty() || path.size() > kMaxSocketPath) {
      return make_error(ErrorCode::kInvalidArgument, "engine address " + options_.address +
                                                         ": the socket path must be 1 to " +
                                                         std::to_string(kMaxSocketPath) + " bytes");
    }
    error_code ec = run([&](auto handler) {
      stream_.async_connect(net::local::stream_protocol::endpoint(path), std::move(handler));
    });
    if (ec) {
      if (cancelled_) return check(ec, "connecting");
      if (ec == beast::error::timeout) return std::unexpected(timeout_error("connecting"));
      std::string hint = ec == net::error::access_denied
                             ? " (run as root or as a member of the socket's group, e.g. docker)"
                             : unavailable_hint(options_.address);
      return make_error(ErrorCode::kUnavailable, "cannot reach the engine at " + options_.address +
                                                     ": " + lower_first(ec.message()) + hint);
    }
    return ok_status();
  }

  template <class Message>
  Status write(Message& message) {
    error_code ec =
        run([&](auto handler) { http::async_write(stream_, message, std::move(handler)); });
    return check(ec, "sending the request");
  }

  template <class Serializer>
  Status write_header(Serializer& serializer) {
    error_code ec = run(
        [&](auto handler) { http::async_write_header(stream_, serializer, std::move(handler)); });
    return check(ec, "sending the request");
  }

  template <class Buffers>
  Status write_raw(const Buffers& buffers) {
    error_code ec =
        run([&](auto handler) { net::async_write(stream_, buffers, std::move(handler)); });
    return check(ec, "sending the request body");
  }

  template <class Parser>
  Status read_header(Parser& parser) {
    error_code ec = run([&](auto handler) {
      http::async_read_header(stream_, buffer_, parser, std::move(handler));
    });
    return check(ec, "reading the answer");
  }

  template <class Parser>
  Status read(Parser& parser) {
    error_code ec =
        run([&](auto handler) { http::async_read(stream_, buffer_, parser, std::move(handler)); });
    return check(ec, "reading the answer");
  }

  // Reads the rest of a buffer_body response (the header has been read):
  // each chunk goes to `on_data`; returns when the message is complete.
  // `eager`: hands on whatever has arrived (async_read_some), for streams
  // of small messages such as events; otherwise each chunk is filled
  // (async_read), for bulk bodies.
  template <class OnData>
  Status read_body_chunks(http::response_parser<http::buffer_body>& parser, OnData&& on_data,
                          bool eager = false) {
    std::string chunk(kIoChunk, '\0');
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      error_code ec = run([&](auto handler) {
        if (eager) {
          http::async_read_some(stream_, buffer_, parser, std::move(handler));
        } else {
          http::async_read(stream_, buffer_, parser, std::move(handler));
        }
      });
      if (ec == http::error::need_buffer) ec = {};
      DS_RETURN_IF_ERROR(check(ec, "reading the answer"));
      size_t got = chunk.size() - parser.get().body().size;
      if (got > 0) DS_RETURN_IF_ERROR(on_data(std::string_view(chunk.data(), got)));
    }
    return ok_status();
  }

  // Reads a buffer_body response's body into a string, keeping at most
  // `limit` bytes (for error bodies).
  Result<std::string> read_body_string(http::response_parser<http::buffer_body>& parser,
                                       size_t limit) {
    std::string body;
    DS_RETURN_IF_ERROR(read_body_chunks(parser, [&](std::string_view data) -> Status {
      body.append(data.substr(0, limit - std::min(limit, body.size())));
      return ok_status();
    }));
    return body;
  }

  void close() {
    error_code ignored;
    stream_.socket().shutdown(net::local::stream_protocol::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  Error timeout_error(std::string_view step) const {
    return Error(ErrorCode::kTimeout, "the engine at " + options_.address +
                                          " did not answer within " +
                                          std::to_string(options_.io_timeout.count()) + "s (" +
                                          std::string(step) + ", " + what_ + ")");
  }

 private:
  // Starts one asynchronous operation and runs the io_context until it
  // completes, its deadline cancels it, or options_.cancel is set.
  template <class Initiate>
  error_code run(Initiate&& initiate) {
    error_code result = net::error::would_block;
    stream_.expires_after(options_.io_timeout);
    initiate([&result](error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    if (options_.cancel == nullptr) {
      ioc_.run();
      return result;
    }
    while (!ioc_.stopped()) {
      if (options_.cancel->load()) {
        cancelled_ = true;
        stream_.cancel();
        ioc_.run();  // the handler runs with operation_aborted
        break;
      }
      ioc_.run_for(std::chrono::milliseconds(100));
    }
    return result;
  }

  Status check(error_code ec, std::string_view step) const {
    if (!ec) return ok_status();
    if (cancelled_)
      return make_error(ErrorCode::kCancelled, "stopped while " + std::string(step) + " (" + what_ +
                                                   ", engine " + options_.address + ")");
    if (ec == beast::error::timeout) return std::unexpected(timeout_error(step));
    return make_error(ErrorCode::kUnavailable,
                      "lost the connection to the engine at " + options_.address + " while " +
                          std::string(step) + " (" + what_ + "): " + lower_first(ec.message()));
  }

  const EngineOptions& options_;
  std::string what_;
  net::io_context ioc_;
  beast::basic_stream<net::local::stream_protocol> stream_;
  beast::flat_buffer buffer_;
  bool cancelled_ = false;
};

struct SmallResponse {
  unsigned status = 0;
  std::string body;
  std::string api_version;  // the API-Version header
};

template <class Request>
void set_common_headers(Request& request) {
  request.set(http::field::host, "localhost");
  request.set(http::field::user_agent, kUserAgent);
}

std::string image_not_found(const std::string& name, const std::string& address) {
  return "no such image " + name + " in the engine at " + address;
}

std::vector<std::string> string_list(const Json& value) {
  std::vector<std::string> out;
  if (!value.is_array()) return out;  // the engine sends null for "none"
  for (const auto& item : value) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
  return out;
}

std::string string_field(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// RepoTags in Docker's form whatever the engine (Podman lists
// "docker.io/library/app:1" for Docker's "app:1"); see familiar_name().
std::vector<std::string> repo_tags(const Json& value) {
  std::vector<std::string> tags = string_list(value);
  for (auto& tag : tags) tag = engine_detail::familiar_name(tag);
  return tags;
}

int64_t int_field(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<int64_t>() : 0;
}

// Runs `body`, turning any exception into an Error (nothing escapes).
template <class F>
auto guarded(const std::string& address, std::string_view what, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Json::exception& e) {
    return make_error(ErrorCode::kProtocol, "unexpected answer from the engine at " + address +
                                                " (" + std::string(what) + "): " + e.what());
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal,
                      "engine client (" + std::string(what) + ", " + address + "): " + e.what());
  }
}

}  // namespace

struct DockerApi {
  const EngineOptions& options;
  std::optional<std::string> api_prefix;  // negotiated on first use

  explicit DockerApi(const EngineOptions& opts) : options(opts) {}

  Result<SmallResponse> exchange(http::verb method, const std::string& target,
                                 std::string_view what) {
    Connection connection(options, std::string(what));
    DS_RETURN_IF_ERROR(connection.connect());
    http::request<http::empty_body> request{method, target, 11};
    set_common_headers(request);
    request.prepare_payload();
    DS_RETURN_IF_ERROR(connection.write(request));
    http::response_parser<http::string_body> parser;
    parser.body_limit(kSmallBodyLimit);
    DS_RETURN_IF_ERROR(connection.read(parser));
    connection.close();
    SmallResponse response;
    response.status = parser.get().result_int();
    response.body = std::move(parser.get().body());
    auto it = parser.get().find("Api-Version");
    if (it != parser.get().end()) response.api_version = std::string(it->value());
    return response;
  }

  // GET /_ping; records the API prefix to use from its API-Version header.
  Status ping() {
    DS_ASSIGN_OR_RETURN(SmallResponse response, exchange(http::verb::get, "/_ping", "ping"));
    if (response.status != 200) {
      return make_error(ErrorCode::kEngine,
                        "the engine at " + options.address + " failed its health check: " +
                            engine_detail::error_message_from_body(response.body, response.status));
    }
    api_prefix = engine_detail::api_path_prefix(response.api_version);
    return ok_status();
  }

  Result<std::string> prefix() {
    if (!api_prefix) DS_RETURN_IF_ERROR(ping());
    return *api_prefix;
  }

  // An API call with a small JSON answer. 404 becomes kNotFound with
  // `not_found_message` if given; other failures kEngine with the engine's
  // message.
  Result<std::string> call(http::verb method, const std::string& path, std::string_view what,
                           const std::string& not_found_message = {}) {
    DS_ASSIGN_OR_RETURN(std::string api, prefix());
    DS_ASSIGN_OR_RETURN(SmallResponse response, exchange(method, api + path, what));
    if (response.status >= 200 && response.status < 300) return std::move(response.body);
    return std::unexpected(http_error(response.status, response.body, what, not_found_message));
  }

  Error http_error(unsigned status, std::string_view body, std::string_view what,
                   const std::string& not_found_message) const {
    if (status == 404 && !not_found_message.empty()) {
      return Error(ErrorCode::kNotFound, not_found_message);
    }
    return Error(ErrorCode::kEngine,
                 "the engine at " + options.address + " refused " + std::string(what) + " (HTTP " +
                     std::to_string(status) +
                     "): " + engine_detail::error_message_from_body(body, status));
  }

  Status export_image(const std::string& name, ByteSink& out, const std::string& platform) {
    DS_ASSIGN_OR_RETURN(std::string api, prefix());
    std::string what = "export of " + name;
    Connection connection(options, what);
    DS_RETURN_IF_ERROR(connection.connect());
    std::string target = api + "/images/" + engine_detail::url_encode_path(name) + "/get";
    if (!platform.empty()) {
      // The Engine API takes an OCI platform as JSON.
      nlohmann::json p;
      size_t first = platform.find('/'), second = platform.find('/', first + 1);
      p["os"] = platform.substr(0, first);
      p["architecture"] =
          first == std::string::npos ? "" : platform.substr(first + 1, second - first - 1);
      if (second != std::string::npos) p["variant"] = platform.substr(second + 1);
      target += "?platform=" + engine_detail::url_encode_query(p.dump());
    }
    http::request<http::empty_body> request{http::verb::get, target, 11};
    set_common_headers(request);
    request.prepare_payload();
    DS_RETURN_IF_ERROR(connection.write(request));
    http::response_parser<http::buffer_body> parser;
    // Image archives have no size bound. (Not boost::none: Boost 1.74 compares
    // a Content-Length against an empty optional as "over the limit".)
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    DS_RETURN_IF_ERROR(connection.read_header(parser));
    unsigned status = parser.get().result_int();
    if (status != 200) {
      DS_ASSIGN_OR_RETURN(std::string body, connection.read_body_string(parser, kErrorBodyLimit));
      return std::unexpected(
          http_error(status, body, what, image_not_found(name, options.address)));
    }
    DS_RETURN_IF_ERROR(connection.read_body_chunks(
        parser, [&](std::string_view data) { return out.write(data); }));
    connection.close();
    return ok_status();
  }

  Result<ImageEventWait> wait_image_event(int64_t since_ns, std::chrono::seconds window) {
    DS_ASSIGN_OR_RETURN(std::string api, prefix());
    const std::string what = "image events";
    int64_t until_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           (std::chrono::system_clock::now() + window).time_since_epoch())
                           .count();
    Connection connection(options, what);
    DS_RETURN_IF_ERROR(connection.connect());
    http::request<http::empty_body> request{
        http::verb::get, api + engine_detail::image_events_target(since_ns, until_ns), 11};
    set_common_headers(request);
    request.prepare_payload();
    DS_RETURN_IF_ERROR(connection.write(request));
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    DS_RETURN_IF_ERROR(connection.read_header(parser));
    unsigned status = parser.get().result_int();
    if (status != 200) {
      DS_ASSIGN_OR_RETURN(std::string body, connection.read_body_string(parser, kErrorBodyLimit));
      return std::unexpected(http_error(status, body, what, {}));
    }
    ImageEventWait out;
    out.resume_after_ns = until_ns;
    std::string pending;
    // The first arrival ends the read (kCancelled from on_data, caught here):
    // the caller rescans, and resumes after this event.
    Status read = connection.read_body_chunks(
        parser,
        [&](std::string_view data) -> Status {
          pending.append(data);
          size_t newline;
          while ((newline = pending.find('\n')) != std::string::npos) {
            auto event =
                engine_detail::parse_image_event_line(std::string_view(pending).substr(0, newline));
            pending.erase(0, newline + 1);
            if (!event) continue;
            out.changed = true;
            out.what = event->action + " " + event->actor;
            if (event->time_ns > 0) out.resume_after_ns = event->time_ns + 1;
            return make_error(ErrorCode::kCancelled, "seen");
          }
          if (pending.size() > kErrorBodyLimit) pending.clear();  // no newline in 1 MiB: not events
          return ok_status();
        },
        /*eager=*/true);
    connection.close();
    if (!read && !out.changed) return std::unexpected(std::move(read.error()));
    return out;
  }

  Result<std::vector<std::string>> load_image(ByteSource& archive) {
    DS_ASSIGN_OR_RETURN(std::string api, prefix());
    const std::string what = "image load";
    Connection connection(options, what);
    DS_RETURN_IF_ERROR(connection.connect());
    http::request<http::empty_body> request{http::verb::post, api + "/images/load?quiet=1", 11};
    set_common_headers(request);
    request.set(http::field::content_type, "application/x-tar");
    request.chunked(true);
    http::request_serializer<http::empty_body> serializer{request};
    DS_RETURN_IF_ERROR(connection.write_header(serializer));

    // Send the archive in chunks. If the engine stops reading (it rejected
    // the archive and answered early), keep the write error but still try to
    // read its answer, which says why.
    std::string chunk(kIoChunk, '\0');
    Status sent = ok_status();
    for (;;) {
      auto got = archive.read(std::span<char>(chunk.data(), chunk.size()));
      if (!got) return std::unexpected(std::move(got.error()).with_context("image load"));
      if (*got == 0) break;
      sent = connection.write_raw(http::make_chunk(net::buffer(chunk.data(), *got)));
      if (!sent) break;
    }
    if (sent) sent = connection.write_raw(http::make_chunk_last());

    http::response_parser<http::string_body> parser;
    parser.body_limit(kSmallBodyLimit);
    Status received = connection.read(parser);
    if (!received) {
      if (!sent) return std::unexpected(std::move(sent.error()));
      return std::unexpected(std::move(received.error()));
    }
    connection.close();
    unsigned status = parser.get().result_int();
    const std::string& body = parser.get().body();
    if (status != 200) return std::unexpected(http_error(status, body, what, {}));

    // The answer is JSON lines: {"stream":"Loaded image: app:1\n"} or
    // {"errorDetail":{"message":".."},"error":".."}.
    std::vector<std::string> messages;
    size_t start = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string::npos) end = body.size();
      std::string_view line(body.data() + start, end - start);
      start = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!json.is_object()) {
        return make_error(ErrorCode::kProtocol, "the engine at " + options.address +
                                                    " sent a malformed load progress line: " +
                                                    std::string(line.substr(0, 200)));
      }
      std::string error;
      if (auto detail = json.find("errorDetail"); detail != json.end() && detail->is_object()) {
        error = string_field(*detail, "message");
      }
      if (error.empty()) error = string_field(json, "error");
      if (!error.empty()) {
        return make_error(ErrorCode::kEngine, "the engine at " + options.address +
                                                  " could not load the archive: " + error);
      }
      std::string stream = string_field(json, "stream");
      while (!stream.empty() && (stream.back() == '\n' || stream.back() == '\r')) stream.pop_back();
      if (!stream.empty()) messages.push_back(std::move(stream));
    }
    if (!sent) return std::unexpected(std::move(sent.error()));
    return messages;
  }
};

class DockerApiBackend final : public EngineBackend {
 public:
  explicit DockerApiBackend(EngineOptions options)
      : options_(std::move(options)), impl_(options_) {}
  Status ping() override;
  Result<EngineVersion> version() override;
  Result<EngineInfo> info() override;
  Result<std::vector<EngineImageSummary>> list_images() override;
  Result<EngineImageDetail> inspect_image(const std::string& name) override;
  Status export_image(const std::string& name, ByteSink& out, const std::string& platform) override;
  Result<std::vector<std::string>> load_image(ByteSource& archive) override;
  Status tag_image(const std::string& source, const std::string& target) override;
  Status remove_image(const std::string& name, bool force) override;
  Result<ImageEventWait> wait_image_event(int64_t since_ns, std::chrono::seconds window) override;

 private:
  EngineOptions options_;
  DockerApi impl_;
};

Status DockerApiBackend::ping() {
  return guarded(options_.address, "ping", [&]() -> Status { return impl_.ping(); });
}

Result<EngineVersion> DockerApiBackend::version() {
  return guarded(options_.address, "version", [&]() -> Result<EngineVersion> {
    DS_ASSIGN_OR_RETURN(std::string body, impl_.call(http::verb::get, "/version", "version"));
    Json json = Json::parse(body);
    EngineVersion version;
    version.version = string_field(json, "Version");
    version.api_version = string_field(json, "ApiVersion");
    version.os = string_field(json, "Os");
    version.arch = string_field(json, "Arch");
    return version;
  });
}

Result<EngineInfo> DockerApiBackend::info() {
  return guarded(options_.address, "info", [&]() -> Result<EngineInfo> {
    DS_ASSIGN_OR_RETURN(std::string body, impl_.call(http::verb::get, "/info", "info"));
    Json json = Json::parse(body);
    EngineInfo info;
    info.server_version = string_field(json, "ServerVersion");
    info.driver = string_field(json, "Driver");
    // DriverStatus: [["driver-type", "io.containerd.snapshotter.v1"], ...].
    if (auto status = json.find("DriverStatus"); status != json.end() && status->is_array()) {
      for (const auto& pair : *status) {
        if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string() &&
            pair[0].get<std::string>() == "driver-type" &&
            pair[1].get<std::string>() == "io.containerd.snapshotter.v1")
          info.store = ImageStoreKind::kContainerd;
      }
    }
    // Podman's compat /info names itself in the version's components; its
    // OperatingSystem/Name fields vary, so look at /version too.
    if (auto version = impl_.call(http::verb::get, "/version", "version")) {
      Json v = Json::parse(*version);
      if (auto comps = v.find("Components"); comps != v.end() && comps->is_array()) {
        for (const auto& c : *comps)
          if (c.is_object() && string_field(c, "Name").find("Podman") != std::string::npos)
            info.is_podman = true;
      }
    }
    return info;
  });
}

Result<std::vector<EngineImageSummary>> DockerApiBackend::list_images() {
  return guarded(options_.address, "image list", [&]() -> Result<std::vector<EngineImageSummary>> {
    DS_ASSIGN_OR_RETURN(std::string body,
                        impl_.call(http::verb::get, "/images/json", "the image list"));
    Json json = Json::parse(body);
    std::vector<EngineImageSummary> images;
    for (const auto& item : json) {
      EngineImageSummary summary;
      summary.id = string_field(item, "Id");
      summary.repo_tags = repo_tags(item.value("RepoTags", Json()));
      summary.size = int_field(item, "Size");
      summary.created = int_field(item, "Created");
      images.push_back(std::move(summary));
    }
    return images;
  });
}

Result<EngineImageDetail> DockerApiBackend::inspect_image(const std::string& name) {
  return guarded(options_.address, "inspect " + name, [&]() -> Result<EngineImageDetail> {
    DS_ASSIGN_OR_RETURN(
        std::string body,
        impl_.call(http::verb::get, "/images/" + engine_detail::url_encode_path(name) + "/json",
                   "inspect of " + name, image_not_found(name, options_.address)));
    Json json = Json::parse(body);
    EngineImageDetail detail;
    detail.id = string_field(json, "Id");
    detail.repo_tags = repo_tags(json.value("RepoTags", Json()));
    if (auto rootfs = json.find("RootFS"); rootfs != json.end() && rootfs->is_object()) {
      detail.diff_ids = string_list(rootfs->value("Layers", Json()));
    }
    detail.os = string_field(json, "Os");
    detail.architecture = string_field(json, "Architecture");
    detail.size = int_field(json, "Size");
    return detail;
  });
}

Status DockerApiBackend::export_image(const std::string& name, ByteSink& out,
                                      const std::string& platform) {
  return guarded(options_.address, "export " + name,
                 [&]() -> Status { return impl_.export_image(name, out, platform); });
}

Result<std::vector<std::string>> DockerApiBackend::load_image(ByteSource& archive) {
  return guarded(options_.address, "load", [&]() { return impl_.load_image(archive); });
}

Status DockerApiBackend::tag_image(const std::string& source, const std::string& target) {
  return guarded(options_.address, "tag " + source, [&]() -> Status {
    // Qualified: Podman would read "app:1" as "localhost/app:1" when that
    // exists (Docker reads both forms alike).
    DS_ASSIGN_OR_RETURN(auto repo_tag,
                        engine_detail::split_tag_target(engine_detail::qualified_name(target)));
    std::string path = "/images/" + engine_detail::url_encode_path(source) +
                       "/tag?repo=" + engine_detail::url_encode_query(repo_tag.first) +
                       "&tag=" + engine_detail::url_encode_query(repo_tag.second);
    DS_RETURN_IF_ERROR(impl_.call(http::verb::post, path, "tagging " + source + " as " + target,
                                  image_not_found(source, options_.address)));
    return ok_status();
  });
}

Status DockerApiBackend::remove_image(const std::string& name, bool force) {
  return guarded(options_.address, "remove " + name, [&]() -> Status {
    std::string path =
        "/images/" + engine_detail::url_encode_path(name) + (force ? "?force=1" : "?force=0");
    DS_RETURN_IF_ERROR(impl_.call(http::verb::delete_, path, "removal of " + name,
                                  image_not_found(name, options_.address)));
    return ok_status();
  });
}

Result<ImageEventWait> DockerApiBackend::wait_image_event(int64_t since_ns,
                                                          std::chrono::seconds window) {
  return guarded(options_.address, "image events",
                 [&]() { return impl_.wait_image_event(since_ns, window); });
}

std::unique_ptr<EngineBackend> make_docker_api_backend(EngineOptions options) {
  return std::make_unique<DockerApiBackend>(std::move(options));
}

}  // namespace deltasync
