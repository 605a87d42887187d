// HttpConnection: Beast HTTP/1.1 over beast::tcp_stream or
// beast::ssl_stream<tcp_stream>; see http_connection.h.
//
// The pattern is the engine client's (common/engine/docker_api_backend.cpp):
// a private io_context, one asynchronous operation at a time run to
// completion, each with its deadline set on the TCP stream with
// expires_after, so a silent registry becomes kTimeout rather than a hung
// process. Response bodies are parsed into a fixed buffer (buffer_body).
// Request bodies are written raw after the header (Content-Length framing),
// chunk by chunk from the ByteSource.
#include "common/registry/http_connection.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <limits>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "common/net/tls_context.h"

namespace deltasync::registry_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr uint32_t kHeaderLimit = 64 << 10;
constexpr const char* kUserAgent = "deltasync/0.1";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

http::verb to_verb(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return http::verb::get;
    case HttpMethod::kHead:
      return http::verb::head;
    case HttpMethod::kPost:
      return http::verb::post;
    case HttpMethod::kPut:
      return http::verb::put;
    case HttpMethod::kPatch:
      return http::verb::patch;
    case HttpMethod::kDelete:
      return http::verb::delete_;
  }
  return http::verb::get;
}

// host and port of an authority ("h", "h:1", "[::1]:1"); the port defaults
// to the scheme's.
std::pair<std::string, std::string> split_authority(const Url& url) {
  const std::string& a = url.authority;
  std::string default_port = url.tls ? "443" : "80";
  if (a.starts_with('[')) {
    size_t close = a.find(']');
    std::string host = a.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < a.size() && a[close + 1] == ':') {
      return {host, a.substr(close + 2)};
    }
    return {host, default_port};
  }
  size_t colon = a.rfind(':');
  if (colon == std::string::npos) return {a, default_port};
  return {a.substr(0, colon), a.substr(colon + 1)};
}

bool is_ip_address(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Result<Url> parse_url(std::string_view text) {
  Url url;
  std::string_view rest;
  if (text.starts_with("https://")) {
    rest = text.substr(8);
  } else if (text.starts_with("http://")) {
    url.tls = false;
    rest = text.substr(7);
  } else {
    return make_error(ErrorCode::kProtocol, "not an http(s) URL: '" + std::string(text) + "'");
  }
  size_t slash = rest.find_first_of("/?");
  url.authority = std::string(rest.substr(0, slash));
  if (url.authority.empty()) {
    return make_error(ErrorCode::kProtocol, "URL without a host: '" + std::string(text) + "'");
  }
  url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (url.target.starts_with('?')) url.target.insert(0, "/");
  return url;
}

Result<Url> resolve_url(const Url& base, std::string_view location) {
  if (location.starts_with("http://") || location.starts_with("https://")) {
    return parse_url(location);
  }
  if (location.starts_with("//")) {
    return parse_url(std::string(base.tls ? "https:" : "http:") + std::string(location));
  }
  Url url = base;
  if (location.starts_with('/')) {
    url.target = std::string(location);
  } else {
    // Relative to the base path's directory.
    std::string path = base.target.substr(0, base.target.find('?'));
    url.target = path.substr(0, path.rfind('/') + 1) + std::string(location);
  }
  return url;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

const char* method_name(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kHead:
      return "HEAD";
    case HttpMethod::kPost:
      return "POST";
    case HttpMethod::kPut:
      return "PUT";
    case HttpMethod::kPatch:
      return "PATCH";
    case HttpMethod::kDelete:
      return "DELETE";
  }
  return "?";
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

std::vector<std::string> HttpResponse::all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) out.push_back(value);
  }
  return out;
}

class TlsClientContext {
 public:
  asio::ssl::context context{asio::ssl::context::tls_client};
};

Result<std::shared_ptr<TlsClientContext>> make_tls_client_context(const std::string& ca_file) {
  try {
    auto tls = std::make_shared<TlsClientContext>();
    error_code ec;
    tls->context.set_default_verify_paths(ec);
    if (!ca_file.empty()) {
      tls->context.load_verify_file(ca_file, ec);
      if (ec) {
        return make_error(ErrorCode::kInvalidArgument,
                          "registry CA file " + ca_file + ": " + net_detail::describe_error(ec));
      }
    }
    tls->context.set_verify_mode(asio::ssl::verify_peer);
    SSL_CTX_set_min_proto_version(tls->context.native_handle(), TLS1_2_VERSION);
    return tls;
  } catch (const std::exception& e) {
    return make_error(ErrorCode::kInternal, std::string("registry TLS context: ") + e.what());
  }
}

struct HttpConnection::Impl {
  Impl(Url url, std::shared_ptr<TlsClientContext> tls_context, const HttpSettings& config,
       HttpCounters& totals)
      : origin(std::move(url)),
        tls(std::move(tls_context)),
        settings(config),
        counters(totals),
        chunk(kIoChunk, '\0') {}

  Url origin;
  std::shared_ptr<TlsClientContext> tls;
  HttpSettings settings;
  HttpCounters& counters;
  asio::io_context ioc;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::buffer_body>> parser;
  bool open = false;
  bool keep_alive = false;
  bool head_only = false;
  std::string chunk;

  beast::tcp_stream& tcp() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  // Starts one asynchronous operation on the stream in use and runs the
  // io_context until it completes or its deadline cancels it.
  template <class Initiate>
  error_code run(Initiate&& initiate) {
    error_code result = asio::error::would_block;
    tcp().expires_after(settings.io_timeout);
    auto handler = [&result](error_code ec, auto&&...) { result = ec; };
    if (secure) {
      initiate(*secure, std::move(handler));
    } else {
      initiate(*plain, std::move(handler));
    }
    ioc.restart();
    ioc.run();
    return result;
  }

  Error failure(error_code ec, std::string_view step) {
    close();
    if (ec == beast::error::timeout) {
      return Error(ErrorCode::kTimeout, "no answer within " +
                                            std::to_string(settings.io_timeout.count() / 1000) +
                                            " s (" + std::string(step) + ")");
    }
    std::string words = ec == http::error::partial_message
                            ? std::string("the connection closed part-way through the message")
                            : net_detail::describe_error(ec);
    return Error(ErrorCode::kUnavailable, std::string(step) + ": " + words);
  }

  Status connect() {
    auto [host, port] = split_authority(origin);
    tcp::resolver resolver(ioc);
    tcp::resolver::results_type endpoints;
    error_code ec = asio::error::would_block;
    resolver.async_resolve(host, port, [&](error_code e, tcp::resolver::results_type found) {
      ec = e;
      endpoints = std::move(found);
    });
    ioc.restart();
    ioc.run_for(settings.io_timeout);
    if (ec == asio::error::would_block) {
      resolver.cancel();
      ioc.restart();
      ioc.run();
      return make_error(ErrorCode::kTimeout,
                        "resolving " + host + " took longer than " +
                            std::to_string(settings.io_timeout.count() / 1000) + " s");
    }
    if (ec) {
      return make_error(ErrorCode::kUnavailable,
                        "cannot resolve " + host + ": " + net_detail::describe_error(ec));
    }
    plain.reset();
    secure.reset();
    buffer.clear();
    if (origin.tls) {
      secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, tls->context);
    } else {
      plain = std::make_unique<beast::tcp_stream>(ioc);
    }
    ec = asio::error::would_block;
    tcp().expires_after(settings.io_timeout);
    tcp().async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
    ioc.restart();
    ioc.run();
    if (ec) return std::unexpected(failure(ec, "connect"));
    if (secure) {
      SSL* ssl = secure->native_handle();
      if (is_ip_address(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
      } else {
        SSL_set_tlsext_host_name(ssl, host.c_str());
        SSL_set1_host(ssl, host.c_str());
      }
      ec = run([](auto& stream, auto handler) {
        if constexpr (requires {
                        stream.async_handshake(asio::ssl::stream_base::client, handler);
                      }) {
          stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
        }
      });
      if (ec) {
        std::string detail;
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          detail = std::string(" (") + X509_verify_cert_error_string(verify) +
                   "; trust the registry's CA: add it to the system store or give its CA file)";
        }
        net_detail::take_openssl_errors();
        Error error = failure(ec, "TLS handshake");
        return make_error(error.code(), error.message() + detail);
      }
    }
    open = true;
    return ok_status();
  }

  void close() {
    error_code ignored;
    if (plain || secure) {
      tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
      tcp().socket().close(ignored);
    }
    open = false;
    parser.reset();
  }

  Result<HttpResponse> send(const HttpRequest& request, bool* reused) {
    if (parser && !parser->is_done()) close();  // the last body was not read
    if (reused) *reused = open;
    if (!open) DS_RETURN_IF_ERROR(connect());
    http::request<http::empty_body> message{to_verb(request.method), request.target, 11};
    message.set(http::field::host, origin.authority);
    message.set(http::field::user_agent, kUserAgent);
    for (const auto& [name, value] : request.headers) message.set(name, value);
    uint64_t length = request.content_length();
    if (length > 0 || request.method == HttpMethod::kPut || request.method == HttpMethod::kPost ||
        request.method == HttpMethod::kPatch) {
      message.content_length(length);
    }
    message.keep_alive(true);
    http::request_serializer<http::empty_body> serializer{message};
    error_code ec = run([&](auto& stream, auto handler) {
      http::async_write_header(stream, serializer, std::move(handler));
    });
    if (ec) return std::unexpected(failure(ec, "sending the request"));
    ++counters.requests;
    DS_RETURN_IF_ERROR(write_body(request, length));
    parser.emplace();
    parser->header_limit(kHeaderLimit);
    parser->body_limit(std::numeric_limits<uint64_t>::max());
    head_only = request.method == HttpMethod::kHead;
    if (head_only) parser->skip(true);
    ec = run([&](auto& stream, auto handler) {
      http::async_read_header(stream, buffer, *parser, std::move(handler));
    });
    if (ec) return std::unexpected(failure(ec, "reading the answer"));
    const auto& head = parser->get();
    HttpResponse response;
    response.status = head.result_int();
    response.reason = std::string(head.reason());
    for (const auto& field : head) {
      response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    if (auto declared = parser->content_length()) response.content_length = *declared;
    keep_alive = parser->keep_alive();
    return response;
  }

  // Writes the request body: `length` bytes from memory or the source.
  Status write_body(const HttpRequest& request, uint64_t length) {
    auto write_raw = [&](std::string_view bytes) {
      error_code ec = run([&](auto& stream, auto handler) {
        asio::async_write(stream, asio::buffer(bytes.data(), bytes.size()), std::move(handler));
      });
      if (!ec) counters.bytes_sent += bytes.size();
      return ec;
    };
    if (!request.body_source) {
      if (request.body.empty()) return ok_status();
      if (error_code ec = write_raw(request.body)) {
        return std::unexpected(failure(ec, "sending the body"));
      }
      return ok_status();
    }
    uint64_t left = length;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
      auto got = request.body_source->read(std::span<char>(chunk.data(), want));
      if (!got) {
        close();
        return std::unexpected(std::move(got.error()));
      }
      if (*got == 0) {
        close();
        return make_error(ErrorCode::kCorrupt, "the content ended " + std::to_string(left) +
                                                   " bytes before its declared size");
      }
      if (error_code ec = write_raw(std::string_view(chunk.data(), *got))) {
        return std::unexpected(failure(ec, "sending the body"));
      }
      left -= *got;
    }
    return ok_status();
  }

  void finish_message() {
    parser.reset();
    if (!keep_alive) close();
  }

  template <class OnData>
  Status read_chunks(uint64_t limit, OnData&& on_data) {
    if (!parser) return make_error(ErrorCode::kInternal, "HTTP body read without a response");
    if (head_only || parser->is_done()) {
      finish_message();
      return ok_status();
    }
    if (auto declared = parser->content_length(); declared && *declared > limit) {
      uint64_t size = *declared;
      close();
      return make_error(ErrorCode::kProtocol, "an answer of " + std::to_string(size) +
                                                  " bytes (limit " + std::to_string(limit) + ")");
    }
    uint64_t total = 0;
    while (!parser->is_done()) {
      parser->get().body().data = chunk.data();
      parser->get().body().size = chunk.size();
      error_code ec = run([&](auto& stream, auto handler) {
        http::async_read(stream, buffer, *parser, std::move(handler));
      });
      if (ec == http::error::need_buffer) ec = {};
      size_t got = chunk.size() - parser->get().body().size;
      counters.bytes_received += got;
      total += got;
      if (total > limit) {
        close();
        return make_error(ErrorCode::kProtocol,
                          "an answer longer than " + std::to_string(limit) + " bytes");
      }
      if (got > 0) {
        Status written = on_data(std::string_view(chunk.data(), got));
        if (!written) {
          close();
          return written;
        }
      }
      if (ec) return std::unexpected(failure(ec, "reading the answer"));
    }
    finish_message();
    return ok_status();
  }
};

HttpConnection::HttpConnection(Url origin, std::shared_ptr<TlsClientContext> tls,
                               const HttpSettings& settings, HttpCounters& counters)
    : impl_(std::make_unique<Impl>(std::move(origin), std::move(tls), settings, counters)) {}

HttpConnection::~HttpConnection() {
  impl_->close();
}

Result<HttpResponse> HttpConnection::send(const HttpRequest& request, bool* reused) {
  return impl_->send(request, reused);
}

Status HttpConnection::read_body(ByteSink& sink, uint64_t limit) {
  return impl_->read_chunks(limit, [&](std::string_view data) { return sink.write(data); });
}

Result<std::string> HttpConnection::read_body_string(uint64_t limit) {
  std::string body;
  DS_RETURN_IF_ERROR(impl_->read_chunks(limit, [&](std::string_view data) -> Status {
    body.append(data);
    return ok_status();
  }));
  return body;
}

Status HttpConnection::discard_body(uint64_t limit) {
  return impl_->read_chunks(limit, [](std::string_view) { return ok_status(); });
}

void HttpConnection::close() {
  impl_->close();
}

const Url& HttpConnection::origin() const {
  return impl_->origin;
}

}  // namespace deltasync::registry_detail
