// Private helpers of the engine client (common/engine, its unit tests, and
// the docker-archive writer's RepoTags): URL encoding, splitting a
// "repo[:tag]" reference, the familiar and qualified forms of image names,
// API version negotiation and reading the engine's error bodies. Pure
// functions, no I/O.
//
// Thread safety: pure functions on values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/util/result.h"

namespace deltasync::engine_detail {

// Percent-encodes `text` for a URL path: keeps unreserved characters and
// the ones an image reference needs unescaped in a path (':', '@', '/'),
// as the docker CLI does.
std::string url_encode_path(std::string_view text);
// Percent-encodes `text` for a query value: keeps only unreserved characters.
std::string url_encode_query(std::string_view text);

// Splits a tag target "repo[:tag]" into {repo, tag}; the tag separator is
// the last ':' after the last '/', so "localhost:5000/app:1" gives
// {"localhost:5000/app", "1"} and "localhost:5000/app" gives
// {"localhost:5000/app", "latest"}. Digests ("@sha256:..") and empty parts
// are kInvalidArgument.
Result<std::pair<std::string, std::string>> split_tag_target(std::string_view target);

// Image names. Docker lists short ("familiar") names: "app:1", "team/app:1".
// Podman's Docker-compatible API lists fully qualified ones:
// "docker.io/library/app:1", and "localhost/app:1" for what it built without
// a registry name; and it reads a short name in a loaded archive's RepoTags,
// or in a tag request when "localhost/app:1" exists, as "localhost/app:1",
// where Docker reads "docker.io/library/app:1". So names are handed out in
// the familiar form (compared and shown alike whatever the engine) and sent
// to an engine in the qualified form, which both read the same way. The
// docker-archive writer uses qualified_name() for RepoTags too.
//   familiar_name:  "docker.io/library/app:1" -> "app:1",
//                   "docker.io/team/app:1" -> "team/app:1"; others unchanged
//                   ("localhost/app:1", "registry:5000/app:1", "<none>:<none>")
//   qualified_name: "app:1" -> "docker.io/library/app:1",
//                   "team/app:1" -> "docker.io/team/app:1"; a name whose first
//                   component is a registry ("localhost", or with '.' or ':')
//                   unchanged
// "localhost/app" names registry "localhost" to Docker, so it is kept.
std::string familiar_name(std::string_view name);
std::string qualified_name(std::string_view name);

// The newest Engine API version whose answers we know ("1.47").
inline constexpr std::string_view kMaxApiVersion = "1.47";

// The API version to put in request paths ("/v1.41"), given the engine's
// API-Version header from /_ping: the older of the engine's and ours; an
// empty or unparsable header gives "" (no prefix: the engine's own version).
std::string api_path_prefix(std::string_view engine_api_version);

// The "message" field of an engine's JSON error body, else the body itself
// (trimmed, shortened), else "HTTP <status>".
std::string error_message_from_body(std::string_view body, unsigned status);

// containerd addresses: containerd://SOCKET[?namespace=NS&snapshotter=NAME].
// The namespace defaults to k8s.io (the kubelet's), the snapshotter to
// overlayfs (containerd's and k3s's default); both are checked to be names
// containerd accepts. An unknown parameter or a relative socket path is
// kInvalidArgument, naming the address.
inline constexpr std::string_view kContainerdScheme = "containerd://";
struct ContainerdAddress {
  std::string socket;  // "/run/containerd/containerd.sock"
  std::string name_space = "k8s.io";
  std::string snapshotter = "overlayfs";
};
Result<ContainerdAddress> parse_containerd_address(std::string_view address);

}  // namespace deltasync::engine_detail
