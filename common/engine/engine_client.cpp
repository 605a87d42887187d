// EngineClient: picks the backend for an address's scheme and forwards to
// it (engine_backend.h); resolves the address users give (or do not give).
#include "common/engine/engine_client.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>
#include <utility>

#include "common/engine/engine_backend.h"
#include "common/engine/engine_detail.h"

namespace deltasync {

namespace {

constexpr std::string_view kUnixScheme = "unix://";
constexpr std::string_view kDefaultAddress = "unix:///var/run/docker.sock";
constexpr size_t kMaxSocketPath = 107;  // sun_path minus its NUL

bool is_socket(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

std::string EngineInfo::describe() const {
  std::string where = driver.empty() ? std::string("unknown driver") : driver;
  if (is_containerd) return "containerd " + server_version + " (" + where + ")";
  std::string kind = is_podman                              ? "Podman"
                     : store == ImageStoreKind::kContainerd ? "containerd image store"
                                                            : "classic image store";
  return kind + " (" + where + ")";
}

Result<std::string> resolve_engine_address(const std::string& flag_value) {
  std::string value = flag_value;
  std::string origin = "--engine";
  if (value.empty()) {
    const char* env = std::getenv("DOCKER_HOST");
    if (env != nullptr && *env != '\0') {
      value = env;
      origin = "DOCKER_HOST";
    }
  }
  if (value.empty()) {
    std::vector<std::string> candidates{std::string(kDefaultAddress.substr(kUnixScheme.size()))};
    const char* runtime_dir = std::getenv("XDG_RUNTIME_DIR");
    if (::geteuid() != 0 && runtime_dir != nullptr && *runtime_dir == '/')
      candidates.push_back(std::string(runtime_dir) + "/podman/podman.sock");
    candidates.push_back("/run/podman/podman.sock");
    for (const auto& path : candidates) {
      if (is_socket(path)) return std::string(kUnixScheme) + path;
    }
    for (const char* path :
         {"/run/containerd/containerd.sock", "/run/k3s/containerd/containerd.sock"}) {
      if (is_socket(path)) return std::string(engine_detail::kContainerdScheme) + path;
    }
    return std::string(kDefaultAddress);
  }
  if (value.starts_with(engine_detail::kContainerdScheme)) {
    DS_RETURN_IF_ERROR(with_context(engine_detail::parse_containerd_address(value), origin));
    return value;
  }
  if (!value.starts_with(kUnixScheme)) {
    if (value.find("://") != std::string::npos) {
      return make_error(
          ErrorCode::kUnsupported,
          origin + " " + value +
              ": only unix:// (Docker, Podman) and containerd:// engine addresses are supported "
              "(tcp://, ssh:// and others are not); give the engine's socket as "
              "unix:///path/to/docker.sock or containerd:///run/containerd/containerd.sock");
    }
    return make_error(ErrorCode::kInvalidArgument,
                      origin + " " + value +
                          ": not an engine address; write unix:///path/to/docker.sock or "
                          "containerd:///run/containerd/containerd.sock");
  }
  std::string path = value.substr(kUnixScheme.size());
  if (path.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      origin + " " + value + ": no socket path after unix://");
  }
  if (path.size() > kMaxSocketPath) {
    return make_error(ErrorCode::kInvalidArgument,
                      origin + " " + value + ": socket path longer than " +
                          std::to_string(kMaxSocketPath) + " bytes (the unix socket limit)");
  }
  return value;
}

EngineClient::EngineClient(EngineOptions options)
    : options_(std::move(options)),
      backend_(options_.address.starts_with(engine_detail::kContainerdScheme)
                   ? make_containerd_backend(options_)
                   : make_docker_api_backend(options_)) {}

EngineClient::~EngineClient() = default;

Status EngineClient::ping() {
  return backend_->ping();
}
Result<EngineVersion> EngineClient::version() {
  return backend_->version();
}
Result<EngineInfo> EngineClient::info() {
  return backend_->info();
}
Result<std::vector<EngineImageSummary>> EngineClient::list_images() {
  return backend_->list_images();
}
Result<EngineImageDetail> EngineClient::inspect_image(const std::string& name) {
  return backend_->inspect_image(name);
}
Status EngineClient::export_image(const std::string& name, ByteSink& out,
                                  const std::string& platform) {
  return backend_->export_image(name, out, platform);
}
Result<std::vector<std::string>> EngineClient::load_image(ByteSource& archive) {
  return backend_->load_image(archive);
}
Status EngineClient::tag_image(const std::string& source, const std::string& target) {
  return backend_->tag_image(source, target);
}
Status EngineClient::remove_image(const std::string& name, bool force) {
  return backend_->remove_image(name, force);
}
Result<ImageEventWait> EngineClient::wait_image_event(int64_t since_ns,
                                                      std::chrono::seconds window) {
  return backend_->wait_image_event(since_ns, window);
}

Result<bool> EngineClient::has_blob(const std::string& digest) {
  return backend_->has_blob(digest);
}

}  // namespace deltasync
