// Test support: a tiny HTTP/1.1 server on 127.0.0.1 that answers each
// request with what a handler returns, for the registry client's tests of
// answers a real registry will not give (redirects to another host, a
// redirect loop). One request per connection (it always answers
// "Connection: close"); a request body is read when it has a
// Content-Length (at most 16 MiB).
//
//   StubHttpServer redirector([&](const StubRequest& r) {
//     return StubResponse{307, {{"Location", "http://127.0.0.1:5000" + r.target}}};
//   });
//   ... client towards redirector.host() ...
//   redirector.requests();  // what was asked, headers included
//
// Ownership: owns its listening socket and thread; the destructor stops
// both. Thread safety: requests() may be called from any thread; the
// handler runs on the server's thread, one request at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace deltasync::testing {

struct StubRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header named `name` (case-insensitive), "" when absent.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const;
};

struct StubResponse {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // not sent for HEAD (Content-Length still is)
};

class StubHttpServer {
 public:
  using Handler = std::function<StubResponse(const StubRequest&)>;
  // Listens on 127.0.0.1:0; throws std::runtime_error if it cannot.
  explicit StubHttpServer(Handler handler);
  ~StubHttpServer();
  StubHttpServer(const StubHttpServer&) = delete;
  StubHttpServer& operator=(const StubHttpServer&) = delete;

  uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<StubRequest> requests() const;

 private:
  void serve();
  void answer(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<StubRequest> requests_;
};

}  // namespace deltasync::testing
