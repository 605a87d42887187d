// The containerd services deltasync uses (content, images, leases,
// snapshots, diff, version), as synchronous gRPC calls over the unix socket,
// with our types in and out. This is the only place that sees gRPC: every
// grpc::Status becomes an Error here, once, naming containerd's address and
// what to do ("cannot reach containerd at containerd:///run/k3s/...: ...
// (is containerd running? k3s: /run/k3s/containerd/containerd.sock)").
//
// Every call carries the namespace (the containerd-namespace header) and,
// while a lease is held (set_lease), the containerd-lease header, so that
// content and snapshots written under it are safe from garbage collection
// until they are referenced by an image. Unary calls have a deadline of
// io_timeout; a stream (content Read/Write) has io_timeout per 64 MiB it
// moves, at least io_timeout.
//
// Ownership and thread safety: owned by one ContainerdBackend; the channel is
// thread-safe but the lease header is per object, so one call at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/engine/engine_client.h"
#include "common/engine/engine_detail.h"
#include "common/io/stream.h"
#include "common/util/result.h"

namespace containerd::types {
class Mount;
}

namespace deltasync::containerd_rpc {

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
};

struct ContentInfo {
  std::string digest;
  int64_t size = 0;
  std::map<std::string, std::string> labels;
};

struct ImageRecord {
  std::string name;  // "docker.io/library/app:1"
  Descriptor target;
  std::map<std::string, std::string> labels;
  int64_t created_seconds = 0;
};

// Opaque mounts of a prepared snapshot, handed back to diff Apply.
struct Mounts {
  std::vector<std::shared_ptr<const ::containerd::types::Mount>> items;
};

class ContainerdRpc {
 public:
  ContainerdRpc(EngineOptions options, engine_detail::ContainerdAddress address);
  ~ContainerdRpc();
  ContainerdRpc(const ContainerdRpc&) = delete;
  ContainerdRpc& operator=(const ContainerdRpc&) = delete;

  const std::string& address() const { return options_.address; }
  const engine_detail::ContainerdAddress& parsed() const { return parsed_; }

  Result<std::pair<std::string, std::string>> version();  // {version, revision}

  // Content store. info: kNotFound when the blob is absent.
  Result<ContentInfo> content_info(const std::string& digest);
  Result<std::string> read_small_blob(const std::string& digest, int64_t limit);
  // The blob's bytes as a stream; reading past its end checks that it had
  // `size` bytes and that the stream ended well. Must not outlive this object.
  std::unique_ptr<ByteSource> open_blob(const std::string& digest, int64_t size);
  // Writes `size` bytes from `content` as blob `digest`; containerd checks
  // digest and size on commit (kVerifyFailed if they differ). A blob that
  // appears meanwhile (another writer) is success.
  Status write_blob(const std::string& digest, int64_t size, ByteSource& content,
                    const std::map<std::string, std::string>& labels);
  // Sets these labels on a blob (others are kept).
  Status set_content_labels(const std::string& digest,
                            const std::map<std::string, std::string>& labels);

  // Images. get: kNotFound when there is no image of that name.
  Result<ImageRecord> get_image(const std::string& name);
  Result<std::vector<ImageRecord>> list_images();
  // Creates the image, or points an existing one of that name at `image`'s
  // target and labels.
  Status put_image(const ImageRecord& image);
  Status delete_image(const std::string& name);

  // Leases: begin creates one (expiring after `ttl` if we die) and attaches
  // it to every later call; end deletes it.
  Status begin_lease(std::chrono::seconds ttl);
  Status end_lease();
  // Adds blob `digest` to the lease, so GC keeps it while we rely on it
  // (a blob we did not write ourselves, e.g. the basis); then checks that
  // it is still there (kNotFound if it went before we leased it).
  Status lease_content(const std::string& digest);

  // Snapshots in the address's snapshotter. stat: kNotFound when absent.
  Status stat_snapshot(const std::string& key);
  Result<Mounts> prepare_snapshot(const std::string& key, const std::string& parent);
  Status commit_snapshot(const std::string& name, const std::string& key,
                         const std::map<std::string, std::string>& labels);
  Status remove_snapshot(const std::string& key);

  // Diff service: applies layer blob `layer` onto `mounts`; returns the
  // digest of what was applied (the uncompressed tar: the diff_id).
  Result<std::string> apply_layer(const Descriptor& layer, const Mounts& mounts);

 private:
  struct Impl;
  EngineOptions options_;
  engine_detail::ContainerdAddress parsed_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deltasync::containerd_rpc
