// Test support: starts docker-registry (and the token proxy) for a test; see
// test_registry.h. Ports are chosen by binding 127.0.0.1:0 and closing (the
// registry must be told its address); the proxy binds 0 itself and prints
// the port it got.
#include "tests/support/test_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/test_engines.h"

#ifndef DELTASYNC_SOURCE_DIR
#error "DELTASYNC_SOURCE_DIR must be defined (tests/CMakeLists.txt)"
#endif

namespace deltasync::testing {

namespace {

constexpr const char* kRegistryBinary = "/usr/bin/docker-registry";
constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kUser = "deltasync";
constexpr const char* kPassword = "s3cret-pass";
constexpr auto kStartLimit = std::chrono::seconds(20);

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("test registry: cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_answers(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("test registry: cannot write " + path.string());
}

std::string tail(const std::string& text, size_t bytes = 4000) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

}  // namespace

std::unique_ptr<TestRegistry> TestRegistry::start(const TestRegistryOptions& options) {
  std::unique_ptr<TestRegistry> registry(new TestRegistry());
  registry->options_ = options;
  char dir_template[] = "/tmp/ds-registry.XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    throw std::runtime_error("test registry: mkdtemp failed");
  }
  registry->dir_ = dir_template;
  registry->launch();  // on a throw, the destructor cleans up
  return registry;
}

void TestRegistry::launch() {
  namespace fs = std::filesystem;
  fs::create_directories(storage_dir());
  if (!fs::exists(kRegistryBinary)) {
    throw std::runtime_error(std::string("test registry: ") + kRegistryBinary +
                             " is missing (scripts/install-deps.sh installs docker-registry)");
  }
  const bool with_proxy = options_.token_auth || options_.referrers_api;
  if (options_.tls) {
    CommandResult made = run_command({MAKE_CERTS_SCRIPT, (dir_ / "pki").string(), "--receiver-name",
                                      "localhost", "--receiver-ip", "127.0.0.1"});
    if (!made.ok()) {
      throw std::runtime_error("test registry: make-certs.sh failed: " + made.error_output);
    }
  }
  // The token proxy does the authentication when it is there.
  const bool htpasswd = options_.basic_auth && !options_.token_auth;
  if (htpasswd) {
    CommandResult hashed = run_command(
        {kPython, "-W", "ignore", "-c",
         "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
         kPassword});
    if (!hashed.ok() || !hashed.output.starts_with("$2b$")) {
      throw std::runtime_error("test registry: bcrypt via python3 crypt failed: " +
                               hashed.error_output);
    }
    write_text(dir_ / "htpasswd", std::string(kUser) + ":" + hashed.output);
  }

  registry_port_ = free_port();
  std::string config =
      "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
      "    rootdirectory: " +
      storage_dir().string() +
      "\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + std::to_string(registry_port_) +
      "\n  secret: deltasync-test\n";
  // TLS is the proxy's job when there is one (the registry stays plain behind it).
  if (options_.tls && !with_proxy) {
    config += "  tls:\n    certificate: " + (dir_ / "pki/receiver.pem").string() +
              "\n    key: " + (dir_ / "pki/receiver.key").string() + "\n";
  }
  if (htpasswd) {
    config +=
        "auth:\n  htpasswd:\n    realm: test-registry\n    path: " + (dir_ / "htpasswd").string() +
        "\n";
  }
  write_text(dir_ / "config.yml", config);
  registry_ = BackgroundProcess::start({kRegistryBinary, "serve", (dir_ / "config.yml").string()},
                                       dir_ / "registry.log");
  if (!registry_)
    throw std::runtime_error("test registry: cannot start " + std::string(kRegistryBinary));
  auto deadline = std::chrono::steady_clock::now() + kStartLimit;
  while (!port_answers(registry_port_)) {
    if (!registry_->running() || std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("test registry: docker-registry did not listen on 127.0.0.1:" +
                               std::to_string(registry_port_) + ":\n" + log_tail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  if (with_proxy) {
    std::vector<std::string> argv{kPython,
                                  DELTASYNC_SOURCE_DIR "/tests/support/registry_token_proxy.py",
                                  "--upstream-port", std::to_string(registry_port_)};
    if (options_.token_auth) {
      argv.insert(argv.end(), {"--token-auth", "--user", kUser, "--password", kPassword});
      if (options_.token_ttl_seconds > 0) {
        argv.insert(argv.end(), {"--token-ttl", std::to_string(options_.token_ttl_seconds)});
      }
    }
    if (options_.referrers_api) argv.push_back("--referrers");
    if (options_.tls) {
      argv.insert(argv.end(), {"--tls-cert", (dir_ / "pki/receiver.pem").string(), "--tls-key",
                               (dir_ / "pki/receiver.key").string()});
    }
    proxy_ = BackgroundProcess::start(argv, dir_ / "proxy.log");
    if (!proxy_ || !proxy_->wait_for_log("listening on ", kStartLimit)) {
      throw std::runtime_error("test registry: the token proxy did not start:\n" + log_tail());
    }
    std::smatch match;
    std::string log = proxy_->log();
    if (!std::regex_search(log, match, std::regex("listening on ([0-9]+)"))) {
      throw std::runtime_error("test registry: no port in the proxy's log:\n" + log_tail());
    }
    proxy_port_ = static_cast<uint16_t>(std::stoi(match[1].str()));
  }

  nlohmann::json docker_config;
  docker_config["auths"][host()]["auth"] = base64(std::string(kUser) + ":" + kPassword);
  write_text(dir_ / "docker-config.json", docker_config.dump(2));
}

TestRegistry::~TestRegistry() {
  proxy_.reset();  // SIGKILL and reap
  registry_.reset();
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

std::string TestRegistry::host() const {
  return "127.0.0.1:" + std::to_string(proxy_port_ ? proxy_port_ : registry_port_);
}

std::string TestRegistry::ca_file() const {
  return options_.tls ? (dir_ / "pki/ca.pem").string() : std::string();
}

std::string TestRegistry::username() const {
  return kUser;
}

std::string TestRegistry::password() const {
  return kPassword;
}

std::string TestRegistry::docker_config_path() const {
  return (dir_ / "docker-config.json").string();
}

RegistryOptions TestRegistry::client_options() const {
  RegistryOptions options;
  options.insecure = !options_.tls;
  options.ca_file = ca_file();
  options.docker_config = docker_config_path();
  options.io_timeout = std::chrono::seconds(20);
  return options;
}

std::filesystem::path TestRegistry::storage_dir() const {
  return dir_ / "storage";
}

std::string TestRegistry::proxy_stats() const {
  if (!proxy_port_) return "";
  std::string url = (options_.tls ? "https://" : "http://") + host() + "/_stats";
  CommandResult got = run_command(
      {kPython, "-c",
       "import ssl,sys,urllib.request\n"
       "ctx = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None\n"
       "print(urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10).read().decode())",
       url, ca_file()});
  if (!got.ok()) throw std::runtime_error("test registry: GET /_stats failed: " + got.error_output);
  return got.output;
}

std::map<std::string, uint64_t> TestRegistry::blob_egress() const {
  std::map<std::string, uint64_t> out;
  std::string stats = proxy_stats();
  if (stats.empty()) return out;
  auto json = nlohmann::json::parse(stats);
  for (const auto& [digest, bytes] : json["blob_egress"].items())
    out[digest] = bytes.get<uint64_t>();
  return out;
}

uint64_t TestRegistry::proxy_requests() const {
  std::string stats = proxy_stats();
  if (stats.empty()) return 0;
  return nlohmann::json::parse(stats)["requests"].get<uint64_t>();
}

void TestRegistry::stop_registry() {
  if (registry_) registry_->stop(SIGKILL);
}

std::string TestRegistry::log_tail() const {
  std::string text;
  if (registry_) text += "--- registry.log\n" + tail(registry_->log());
  if (proxy_) text += "--- proxy.log\n" + tail(proxy_->log());
  return text;
}

}  // namespace deltasync::testing
