// A client for OCI Distribution registries (distribution-spec 1.1 and the
// Docker Registry HTTP API v2): the only place deltasync speaks HTTP to a
// registry. Boost.Beast over TCP with OpenSSL TLS (system CA store, or the
// CA file given), or plain HTTP for loopback tests (`insecure`).
//
// What it does for the caller:
//   - authentication: credentials from the Docker CLI's config.json
//     ("auths" entries, base64 "auth" or "username"/"password"; an
//     "identitytoken" is used as a refresh token), or given explicitly;
//     HTTP Basic when the registry asks for it, and the Bearer dance
//     (WWW-Authenticate: Bearer realm=...,service=...,scope=...: fetch a
//     token from the realm with the credentials, retry once, cache the
//     token per scope until it expires);
//   - redirects (307/302/303/301/308, to another host too, e.g. blob
//     storage): followed up to 5 hops, never sending our Authorization to
//     a host other than the registry;
//   - blobs fetched by digest, optionally from an offset (HTTP Range), the
//     caller verifying the whole (a partial fetch cannot be hashed here);
//     small blobs and manifests fetched by digest are verified here;
//   - blob uploads: skipped when the blob is there (HEAD); POST then one
//     PUT for small blobs, POST + PATCH chunks + PUT for large ones (the
//     Location and Range answers followed as the spec says); each chunk
//     (at most 8 MiB) is read into memory before it is sent, so a 401
//     part-way (a token that expired during a long upload) is answered by
//     authenticating again and resending that chunk;
//   - manifests by tag or digest with the Accept list for OCI index/
//     manifest and Docker v2 list/manifest (and any artifact manifest);
//   - the referrers API (GET /v2/<repo>/referrers/<digest>) where the
//     registry answers it; nullopt where it does not (404 on the endpoint,
//     as on distribution 2.8), so the caller uses the tag schema instead.
// Errors: one conversion here. Registry error bodies ({"errors":[{code,
// message}]}) become "registry HOST: GET /v2/...: 401 UNAUTHORIZED:
// authentication required (log in with docker login HOST, or check
// ~/.docker/config.json)"; codes: 401/403 kVerifyFailed... (see .cpp),
// 404 kNotFound, 5xx / connect / TLS failures kUnavailable, deadlines
// kTimeout, a body that does not hash to its digest kVerifyFailed.
//
// Every network operation (connect, handshake, each read and write) has the
// deadline RegistryOptions::io_timeout. Connections are kept alive and
// reused for the next request to the same host.
//
// Thread safety: one client per thread (it owns its connection and token
// cache); make several clients for parallel work.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/digest.h"
#include "common/io/stream.h"
#include "common/util/result.h"

namespace deltasync {

// REG/REPO[:TAG][@sha256:...], as the Docker CLI writes it, always with the
// registry host (no Docker Hub defaulting): "127.0.0.1:5000/app:2.0.0",
// "registry.example.com/team/app@sha256:...".
struct RegistryReference {
  std::string registry;    // host[:port]
  std::string repository;  // "team/app"
  std::string tag;         // "" when not given
  std::string digest;      // "" when not given
  // Fails with kInvalidArgument naming the text and showing an example.
  static Result<RegistryReference> parse(std::string_view text);
  // The tag if set, else the digest, else "latest".
  std::string reference() const;
  std::string str() const;  // REG/REPO[:TAG][@DIGEST]
};

struct RegistryOptions {
  // Plain HTTP instead of HTTPS (for registries on loopback in tests).
  bool insecure = false;
  // PEM CA bundle to trust in addition to the system store ("" = system).
  std::string ca_file;
  // The Docker CLI's config.json; "" = $DOCKER_CONFIG/config.json, else
  // ~/.docker/config.json (a missing file means no credentials).
  std::string docker_config;
  // Explicit credentials; override config.json when username is set.
  std::string username, password;
  std::chrono::milliseconds io_timeout{60000};
};

namespace media_type {
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOciEmpty = "application/vnd.oci.empty.v1+json";
inline constexpr const char* kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}  // namespace media_type

// An OCI content descriptor (as listed by an index or the referrers API).
struct RegistryDescriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
};

struct RegistryManifest {
  std::string media_type;  // the Content-Type the registry gave (else the body's mediaType)
  std::string body;        // exact bytes
  Digest digest;           // of body (checked against the reference when it is a digest)
};

// Counters of what crossed the network, for reports and benchmarks.
struct RegistryTraffic {
  uint64_t bytes_received = 0;  // HTTP bodies read (headers not counted)
  uint64_t bytes_sent = 0;      // HTTP bodies written
  uint64_t requests = 0;
};

class RegistryClient {
 public:
  // Nothing is contacted yet. `registry` is host[:port].
  static Result<std::unique_ptr<RegistryClient>> create(const std::string& registry,
                                                        const RegistryOptions& options);
  virtual ~RegistryClient() = default;

  // GET /v2/ (auth included): kUnavailable when nothing answers, kVerifyFailed
  // when credentials are refused.
  virtual Status ping() = 0;

  // HEAD of a manifest by tag or digest; nullopt when the registry has none
  // (404). The descriptor's digest is Docker-Content-Digest (else a GET).
  virtual Result<std::optional<RegistryDescriptor>> head_manifest(const std::string& repository,
                                                                  const std::string& reference) = 0;
  // GET of a manifest (limit 4 MiB); nullopt on 404.
  virtual Result<std::optional<RegistryManifest>> get_manifest(const std::string& repository,
                                                               const std::string& reference) = 0;
  // PUT under a tag or its digest; returns the digest the registry stored.
  virtual Result<Digest> put_manifest(const std::string& repository, const std::string& reference,
                                      const std::string& media_type, const std::string& body) = 0;

  // HEAD of a blob: its size, or nullopt when absent.
  virtual Result<std::optional<uint64_t>> blob_size(const std::string& repository,
                                                    const Digest& digest) = 0;
  // Writes the blob's bytes from `offset` to its end into `sink` (Range:
  // bytes=offset- when offset > 0; a registry that ignores Range and sends
  // the whole blob is handled by skipping). Bytes already written stay
  // written when the transfer fails part-way, so the caller can resume
  // from offset + what it got. Does not verify (the caller hashes the
  // whole); `sink.finish()` is not called.
  virtual Status fetch_blob(const std::string& repository, const Digest& digest, uint64_t offset,
                            ByteSink& sink) = 0;
  // A whole small blob (at most `limit` bytes), verified against `digest`.
  virtual Result<std::string> get_blob(const std::string& repository, const Digest& digest,
                                       size_t limit) = 0;

  // Uploads `size` bytes read from `content` as blob `digest`, unless the
  // registry already has it (returns false then, true when uploaded). The
  // registry checks the digest on the final PUT.
  virtual Result<bool> push_blob(const std::string& repository, const Digest& digest, uint64_t size,
                                 ByteSource& content) = 0;
  Result<bool> push_blob(const std::string& repository, std::string_view bytes);

  // The referrers of `subject` (filtered by artifact_type when not empty);
  // nullopt when the registry has no referrers API.
  virtual Result<std::optional<std::vector<RegistryDescriptor>>> referrers(
      const std::string& repository, const Digest& subject, const std::string& artifact_type) = 0;

  virtual const RegistryTraffic& traffic() const = 0;
};

}  // namespace deltasync
