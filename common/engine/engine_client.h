// Container-engine client: what deltasync asks of the engine on either side
// (list, inspect, export, load, tag, remove), whatever the engine is. The
// address picks the API (common/engine/engine_backend.h):
//   unix:///var/run/docker.sock       the Docker Engine API (Boost.Beast
//       HTTP/1.1): dockerd on either image store, and Podman's compatible
//       service, whose different answers are brought to Docker's form
//       (names, see engine_detail::familiar_name);
//   containerd:///run/containerd/containerd.sock[?namespace=k8s.io&snapshotter=overlayfs]
//       containerd's gRPC API (k3s: /run/k3s/containerd/containerd.sock),
//       namespace k8s.io by default (where the kubelet looks).
// Archives go both ways in the forms the engine's store needs (a
// docker-archive for the classic store and Podman, an OCI layout for
// containerd, see common/load/image_loader.h).
//
// Each call opens its own connection (or, for containerd, uses the client's
// channel), so an EngineClient may be shared by threads as long as calls do
// not overlap on one object. Every network operation has a deadline
// (EngineOptions).
// Engine failures become Errors that name the engine and what to do:
//   "no such image app:2.0.0 in the engine at unix:///var/run/docker.sock"
//   "cannot reach the engine at unix:///run/x.sock: connection refused
//    (is dockerd running? set --engine or DOCKER_HOST)"
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/io/stream.h"

namespace deltasync {

class EngineBackend;

struct EngineOptions {
  // "unix:///path/to/socket" or "containerd:///path/to/socket[?...]"; see
  // resolve_engine_address().
  std::string address;
  // Deadline for connecting and for each read/write while streaming.
  std::chrono::seconds io_timeout{300};
  // Borrowed, may be null; must outlive the client. When it turns true, a
  // call in progress on the Docker API (an export, an event wait) ends
  // within about 100 ms with ErrorCode::kCancelled, its connection closed.
  // What the service's background indexer stops with on SIGTERM.
  const std::atomic<bool>* cancel = nullptr;
};

// --engine value if non-empty, else $DOCKER_HOST, else the first of these
// sockets that exists: /var/run/docker.sock; for a user other than root,
// rootless Podman's $XDG_RUNTIME_DIR/podman/podman.sock; rootful Podman's
// /run/podman/podman.sock; /run/containerd/containerd.sock and k3s's
// /run/k3s/containerd/containerd.sock (as containerd://). None:
// unix:///var/run/docker.sock (whose error then names it). Only unix:// and
// containerd:// addresses are supported (clear error otherwise).
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
//                Docker 29 installs) and containerd itself: Id = manifest or
//                index digest. Docker's load needs every layer blob the
//                archive's manifest names; containerd's (EngineInfo::
//                load_reuses_blobs) takes an archive without the blobs its
//                content store holds.
enum class ImageStoreKind { kClassic, kContainerd };

struct EngineInfo {
  std::string server_version;  // "28.5.2+dfsg4", "5.8.6" (Podman)
  std::string driver;          // "vfs", "native", "overlayfs", ...
  ImageStoreKind store = ImageStoreKind::kClassic;
  bool is_podman = false;
  // containerd itself (containerd:// address): its load writes only the
  // blobs its content store lacks, so archives may leave those out.
  bool is_containerd = false;
  bool load_reuses_blobs() const { return is_containerd; }
  // "classic store (vfs)", "containerd image store (native)", "Podman (vfs)",
  // "containerd 1.6.20 (native snapshotter, namespace k8s.io)".
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

// What wait_image_event() saw.
struct ImageEventWait {
  bool changed = false;  // an image was loaded, pulled, imported or tagged
  std::string what;      // "load sha256:..", "tag app:2", for the log
  // Where the next wait resumes (Unix time in ns; events after it only), so
  // that nothing between two waits is missed.
  int64_t resume_after_ns = 0;
};

struct EngineImageDetail {
  std::string id;                      // "sha256:<hex>", the engine's ID as above
  std::vector<std::string> repo_tags;  // Docker's form, as above
  std::vector<std::string> diff_ids;   // RootFS.Layers, "sha256:<hex>"
  // The config digest (what the kubelet and crictl call the image ID), read
  // from the manifest on containerd; empty from the Docker API (whose Id is
  // the config digest on the classic store and Podman).
  std::string config_digest;
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
  // Streams the image as an archive into `out` (out.finish() is not called;
  // the caller finishes/publishes it): `docker save` output (GET
  // /images/{name}/get), or for containerd an OCI-layout tar of the image's
  // blobs read from its content store. `platform` ("linux/arm64"; empty:
  // what the engine exports by default, containerd: this host's) selects one
  // platform of a multi-platform image (Docker API 1.48+).
  Status export_image(const std::string& name, ByteSink& out, const std::string& platform = "");
  // Streams an archive from `archive` into the engine: POST /images/load
  // (chunked) for Docker and Podman; for containerd an OCI-layout tar whose
  // blobs are written to the content store (those it holds are skipped, and
  // may be missing from the archive), then the images created and unpacked
  // into the snapshotter. Returns progress messages ("Loaded image: app:2").
  Result<std::vector<std::string>> load_image(ByteSource& archive);
  // Gives image `source` the name `target` ("repo[:tag]"), sent qualified
  // ("docker.io/library/app:1" for "app:1", as Docker and the kubelet read
  // it): POST /images/{source}/tag, or containerd's images service.
  Status tag_image(const std::string& source, const std::string& target);
  // Removes the name (or the image, given its ID); tests and housekeeping.
  Status remove_image(const std::string& name, bool force);
  // Waits up to `window` for the engine to report an image loaded, pulled,
  // imported or tagged after `since_ns` (Unix time in ns; the engine replays
  // recent events, so nothing between two calls is lost): the Docker API's
  // GET /events with since/until and an image filter (Podman's compatible
  // service too). Returns at the first such event (changed), or when the
  // window has passed (not changed). kUnsupported on containerd, whose
  // events service is not in the generated API here (proto/containerd/):
  // callers poll the image list instead. Window must be below io_timeout.
  Result<ImageEventWait> wait_image_event(int64_t since_ns, std::chrono::seconds window);
  // Whether the engine's content store holds blob `digest` ("sha256:<hex>");
  // false on engines whose load cannot reuse blobs (see EngineInfo).
  Result<bool> has_blob(const std::string& digest);

 private:
  EngineOptions options_;
  std::unique_ptr<EngineBackend> backend_;
};

}  // namespace deltasync
