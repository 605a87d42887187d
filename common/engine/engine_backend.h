// What an engine client must do, once per kind of engine API: the seam
// between EngineClient (what the rest of deltasync calls) and the protocol
// spoken to the engine. Two backends:
//   - the Docker Engine API over a unix socket (docker_api_backend.cpp):
//     dockerd on either image store, Podman's compatible service;
//   - containerd's gRPC API (containerd/containerd_backend.cpp): k3s,
//     kubeadm nodes and other hosts with containerd as the only engine.
// EngineClient picks one from the address scheme (unix:// or containerd://)
// and adds nothing else, so each backend owns its deadlines and the wording
// of its errors (which name the engine and say what to do).
//
// Ownership and thread safety: as EngineClient's: owned by one EngineClient,
// one call at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"

namespace deltasync {

class EngineBackend {
 public:
  virtual ~EngineBackend() = default;
  virtual Status ping() = 0;
  virtual Result<EngineVersion> version() = 0;
  virtual Result<EngineInfo> info() = 0;
  virtual Result<std::vector<EngineImageSummary>> list_images() = 0;
  virtual Result<EngineImageDetail> inspect_image(const std::string& name) = 0;
  virtual Status export_image(const std::string& name, ByteSink& out,
                              const std::string& platform) = 0;
  virtual Result<std::vector<std::string>> load_image(ByteSource& archive) = 0;
  virtual Status tag_image(const std::string& source, const std::string& target) = 0;
  virtual Status remove_image(const std::string& name, bool force) = 0;
  virtual Result<ImageEventWait> wait_image_event(int64_t since_ns, std::chrono::seconds window) {
    (void)since_ns;
    (void)window;
    return make_error(ErrorCode::kUnsupported, "this engine's API gives no image events here");
  }
  virtual Result<bool> has_blob(const std::string& digest) {
    (void)digest;
    return false;
  }
};

std::unique_ptr<EngineBackend> make_docker_api_backend(EngineOptions options);
std::unique_ptr<EngineBackend> make_containerd_backend(EngineOptions options);

}  // namespace deltasync
