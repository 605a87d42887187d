// Test support: a real OCI registry for the registry client's tests and for
// pull-mode end-to-end tests. Debian's docker-registry (distribution 2.8,
// /usr/bin/docker-registry) runs on a free 127.0.0.1 port with its own
// storage under a temp dir; optionally with TLS (a CA made by
// deploy/make-certs.sh, certificate for 127.0.0.1), htpasswd Basic auth
// (user "deltasync", password "s3cret-pass"), and a token proxy in front
// (tests/support/registry_token_proxy.py: the Bearer dance, blob egress
// counters, and with referrers_api the OCI referrers API that 2.8 lacks).
//
//   auto registry = TestRegistry::start({.basic_auth = true});
//   auto client = RegistryClient::create(registry->host(), registry->client_options());
//
// Distribution 2.8 accepts htpasswd over plain HTTP (it logs nothing about
// it), so basic_auth works with or without tls.
//
// Ownership: the object owns the processes and the temp dir; the destructor
// kills both processes and removes the dir. Thread safety: const accessors
// may be called from any thread; start/stop_registry from the owner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/registry/registry_client.h"
#include "tests/support/background_process.h"

namespace deltasync::testing {

struct TestRegistryOptions {
  bool tls = false;            // HTTPS with a CA made by deploy/make-certs.sh (cert for 127.0.0.1)
  bool basic_auth = false;     // htpasswd auth in the registry itself
  bool token_auth = false;     // put the token proxy in front (Bearer dance)
  bool referrers_api = false;  // the proxy also answers GET /v2/<repo>/referrers/<digest>
  // With token_auth: tokens stop working this long after they were issued
  // (their answer still says 300 s); 0 = never.
  double token_ttl_seconds = 0;
};

class TestRegistry {
 public:
  // Starts the registry (and the proxy when token_auth or referrers_api),
  // waits until /v2/ answers (bounded: 20 s). Throws std::runtime_error with
  // the log tail on failure.
  static std::unique_ptr<TestRegistry> start(const TestRegistryOptions& options = {});
  ~TestRegistry();
  TestRegistry(const TestRegistry&) = delete;
  TestRegistry& operator=(const TestRegistry&) = delete;

  // "127.0.0.1:PORT" clients use (the proxy's when there is one).
  std::string host() const;
  std::string ca_file() const;  // "" without tls
  std::string username() const;
  std::string password() const;
  // A Docker CLI config.json with an "auths" entry for host() (base64 auth).
  std::string docker_config_path() const;
  // insecure when !tls, ca_file and docker_config set.
  RegistryOptions client_options() const;
  std::filesystem::path storage_dir() const;
  // Bytes of response bodies sent for GET /v2/<repo>/blobs/<digest> since
  // start, per digest: only with a proxy (token_auth or referrers_api), else
  // empty.
  std::map<std::string, uint64_t> blob_egress() const;
  // Requests the proxy has seen (0 without a proxy), for "token reused" checks.
  uint64_t proxy_requests() const;
  // Kills the registry process (for "registry down" tests); the port stays dead.
  void stop_registry();

  // The registry's own port (behind the proxy when there is one).
  uint16_t registry_port() const { return registry_port_; }
  std::string log_tail() const;

 private:
  TestRegistry() = default;
  void launch();
  std::string proxy_stats() const;  // the proxy's /_stats JSON, "" without a proxy

  TestRegistryOptions options_;
  std::filesystem::path dir_;
  uint16_t registry_port_ = 0;
  uint16_t proxy_port_ = 0;
  std::optional<BackgroundProcess> registry_;
  std::optional<BackgroundProcess> proxy_;
};

}  // namespace deltasync::testing
