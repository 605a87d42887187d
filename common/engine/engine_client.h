// Container-engine client: the Docker Engine API over its unix socket
// (Boost.Beast HTTP/1.1). Podman's Docker-compatible socket (podman system
// service) speaks the same; where its answers differ, they are brought to
// Docker's form here (names, see engine_detail::familiar_name), and
// DockerArchiveWriter writes archives both engines load (docs/deploy.md,
// "Podman").
//
// Each call opens its own connection, so an EngineClient may be shared by
// threads as long as calls do not overlap on one object (it holds no socket
// between calls). Every network operation has a deadline (EngineOptions).
// Engine failures become Errors that name the engine and what to do:
//   "no such image app:2.0.0 in the engine at unix:///var/run/docker.sock"
//   "cannot reach the engine at unix:///run/x.sock: connection refused
//    (is dockerd running? set --engine or DOCKER_HOST)"
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/io/stream.h"

namespace deltasync {

struct EngineOptions {
  // "unix:///path/to/socket"; see resolve_engine_address().
  std::string address;
  // Deadline for connecting and for each read/write while streaming.
  std::chrono::seconds io_timeout{300};
};

// --engine value if non-empty, else $DOCKER_HOST, else the first of these
// sockets that exists: /var/run/docker.sock; for a user other than root,
// rootless Podman's $XDG_RUNTIME_DIR/podman/podman.sock; rootful Podman's
// /run/podman/podman.sock. None: unix:///var/run/docker.sock (whose error
// then names it). Only unix:// addresses are supported (clear error otherwise).
Result<std::string> resolve_engine_address(const std::string& flag_value);

struct EngineVersion {
  std::string version;      // e.g. "20.10.24+dfsg1"
  std::string api_version;  // e.g. "1.41"
  std::string os;
  std::string arch;
};

// Where an engine keeps its images, which decides what its image IDs are and
// what its load accepts (docs/engines.md):
//   kClassic     dockerd's graph-driver store, Podman: Id = config digest;
//                load skips layers it holds (placeholders in the archive).
//   kContainerd  Docker's containerd image store (driver-type
//                io.containerd.snapshotter.v1 in /info; the default of fresh
//                Docker 29 installs): Id = manifest or index digest; a load
//                needs every layer blob the archive's manifest names.
enum class ImageStoreKind { kClassic, kContainerd };

struct EngineInfo {
  std::string server_version;  // "28.5.2+dfsg4", "5.8.6" (Podman)
  std::string driver;          // "vfs", "native", "overlayfs", ...
  ImageStoreKind store = ImageStoreKind::kClassic;
  bool is_podman = false;
  // "classic store (vfs)", "containerd image store (native)", "Podman (vfs)".
  std::string describe() const;
};

struct EngineImageSummary {
  // The engine's own ID, "sha256:<hex>": the config digest on the classic
  // store and Podman, the manifest or index digest on the containerd store.
  std::string id;
  // In Docker's form ("app:1", not Podman's "docker.io/library/app:1").
  std::vector<std::string> repo_tags;
  int64_t size = 0;
  int64_t created = 0;
};

struct EngineImageDetail {
  std::string id;                      // "sha256:<hex>", the engine's ID as above
  std::vector<std::string> repo_tags;  // Docker's form, as above
  std::vector<std::string> diff_ids;   // RootFS.Layers, "sha256:<hex>"
  std::string os;
  std::string architecture;
  int64_t size = 0;
};

class EngineClient {
 public:
  explicit EngineClient(EngineOptions options);
  ~EngineClient();
  EngineClient(const EngineClient&) = delete;
  EngineClient& operator=(const EngineClient&) = delete;

  const std::string& address() const { return options_.address; }

  Status ping();
  Result<EngineVersion> version();
  // GET /info: the kind of image store (detected, never configured).
  Result<EngineInfo> info();
  Result<std::vector<EngineImageSummary>> list_images();
  // `name` is a reference ("app:2.0.0", "app" meaning app:latest) or an ID.
  // A missing image is ErrorCode::kNotFound.
  Result<EngineImageDetail> inspect_image(const std::string& name);
  // GET /images/{name}/get: streams the `docker save` archive into `out`
  // (out.finish() is not called; the caller finishes/publishes it).
  // `platform` ("linux/arm64"; empty: what the engine exports by default)
  // selects one platform of a multi-platform image (API 1.48+).
  Status export_image(const std::string& name, ByteSink& out, const std::string& platform = "");
  // POST /images/load: streams a docker-archive from `archive` (chunked).
  // Returns the engine's progress messages ("Loaded image: app:2.0.0").
  Result<std::vector<std::string>> load_image(ByteSource& archive);
  // POST /images/{source}/tag?repo=..&tag=..; target "repo[:tag]", sent
  // qualified ("docker.io/library/app:1" for "app:1", as Docker reads it).
  Status tag_image(const std::string& source, const std::string& target);
  // DELETE /images/{name} (used by tests and store housekeeping).
  Status remove_image(const std::string& name, bool force);

 private:
  struct Impl;
  EngineOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync
