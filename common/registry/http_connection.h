// One HTTP/1.1 connection to one origin (scheme + host + port), for the
// registry client: Boost.Beast over TCP, with OpenSSL TLS (SNI, hostname or
// IP verification against the system CA store plus an optional CA file) or
// plain TCP. Beast and Asio stay behind this header (pimpl), so the client
// code sees requests, response heads and our ByteSource/ByteSink.
//
// A request is sent with send(), which also reads the response head; the
// body is then read with one of read_body / read_body_string /
// discard_body before the next send(). Bodies stream both ways through a
// fixed buffer (kIoChunk), never whole in memory. Header size and body
// limits are checked before anything is allocated for them. After a
// complete response that allows keep-alive the connection is reused by the
// next send(); otherwise it reconnects.
//
// Every network step (resolve, connect, handshake, each read and write) has
// the deadline `io_timeout`: kTimeout. Connect/TLS/IO failures are
// kUnavailable; messages name the step ("connect: connection refused"), the
// caller adds which registry and request.
//
// Ownership: owns its io_context and socket; shares the TLS context.
// Thread safety: none; one owner (the RegistryClient) uses it at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/io/stream.h"
#include "common/util/result.h"

namespace deltasync::registry_detail {

// scheme://authority/target, as in a Location header or a token realm.
struct Url {
  bool tls = true;
  std::string authority;  // host[:port], as written
  std::string target;     // path and query, "/" when empty
  std::string origin() const { return (tls ? "https://" : "http://") + authority; }
  std::string str() const { return origin() + target; }
};

// Parses an absolute http(s) URL; kProtocol naming it otherwise.
Result<Url> parse_url(std::string_view text);
// A Location value: absolute, or relative to `base` ("/v2/..." or "x?y").
Result<Url> resolve_url(const Url& base, std::string_view location);
// Percent-encodes all but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

enum class HttpMethod { kGet, kHead, kPost, kPut, kPatch, kDelete };
const char* method_name(HttpMethod method);

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  std::string target;  // "/v2/..."
  std::vector<std::pair<std::string, std::string>> headers;
  // The body: `body` bytes, or `body_size` bytes read from `body_source`
  // when it is set (a source that ends early fails the request, kCorrupt).
  std::string_view body;
  ByteSource* body_source = nullptr;
  uint64_t body_size = 0;
  uint64_t content_length() const { return body_source ? body_size : body.size(); }
};

struct HttpResponse {
  unsigned status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::optional<uint64_t> content_length;
  // The first header named `name` (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
  std::vector<std::string> all(std::string_view name) const;
};

struct HttpSettings {
  std::string ca_file;  // PEM bundle trusted besides the system store
  std::chrono::milliseconds io_timeout{60000};
};

// Body bytes moved, summed over every connection of a client.
struct HttpCounters {
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t requests = 0;
};

// The TLS client context of a client (system CA store + ca_file); made once
// and shared by its connections. Not thread-safe to change; never changed.
class TlsClientContext;
Result<std::shared_ptr<TlsClientContext>> make_tls_client_context(const std::string& ca_file);

class HttpConnection {
 public:
  // Nothing is contacted yet. `tls` may be null for an http:// origin.
  HttpConnection(Url origin, std::shared_ptr<TlsClientContext> tls, const HttpSettings& settings,
                 HttpCounters& counters);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Connects if needed, writes the request and reads the response head
  // (at most 64 KiB of headers). `reused` is set when an open keep-alive
  // connection carried it (the caller may retry a replayable request once
  // on a fresh connection when that fails).
  Result<HttpResponse> send(const HttpRequest& request, bool* reused = nullptr);
  // The body of the response just read: to `sink` (kProtocol when it is
  // longer than `limit`), into a string, or thrown away (bounded by `limit`).
  Status read_body(ByteSink& sink, uint64_t limit);
  Result<std::string> read_body_string(uint64_t limit);
  Status discard_body(uint64_t limit);
  // Drops the socket (after a failure, or to give up a body part-way).
  void close();
  const Url& origin() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync::registry_detail
