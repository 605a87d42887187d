// The engine client's pure helpers: URL encoding of image names, splitting
// tag targets (registry hosts with ports), API version choice, engine error
// bodies, and resolve_engine_address. No engine needed.
#include <cstdlib>

#include <gtest/gtest.h>

#include "common/engine/engine_client.h"
#include "common/engine/engine_detail.h"

namespace deltasync {
namespace {

using namespace engine_detail;

TEST(EngineDetail, UrlEncodePathKeepsReferenceCharacters) {
  EXPECT_EQ(url_encode_path("localhost:5000/app:1"), "localhost:5000/app:1");
  EXPECT_EQ(url_encode_path("app@sha256:ab"), "app@sha256:ab");
  EXPECT_EQ(url_encode_path("a b?c#d%e"), "a%20b%3Fc%23d%25e");
}

TEST(EngineDetail, UrlEncodeQueryEncodesSeparators) {
  EXPECT_EQ(url_encode_query("localhost:5000/app"), "localhost%3A5000%2Fapp");
  EXPECT_EQ(url_encode_query("1.0_rc-2~x"), "1.0_rc-2~x");
  EXPECT_EQ(url_encode_query("a&b=c"), "a%26b%3Dc");
}

TEST(EngineDetail, SplitTagTarget) {
  auto split = [](std::string_view target) {
    auto result = split_tag_target(target);
    EXPECT_TRUE(result) << target;
    return result ? *result : std::pair<std::string, std::string>();
  };
  EXPECT_EQ(split("app:2.0.0"), (std::pair<std::string, std::string>{"app", "2.0.0"}));
  EXPECT_EQ(split("app"), (std::pair<std::string, std::string>{"app", "latest"}));
  EXPECT_EQ(split("localhost:5000/app:1"),
            (std::pair<std::string, std::string>{"localhost:5000/app", "1"}));
  EXPECT_EQ(split("localhost:5000/app"),
            (std::pair<std::string, std::string>{"localhost:5000/app", "latest"}));
  EXPECT_EQ(split("reg.example.com/team/app:v1"),
            (std::pair<std::string, std::string>{"reg.example.com/team/app", "v1"}));
}

TEST(EngineDetail, SplitTagTargetRejectsBadTargets) {
  for (std::string_view bad : {"", "app:", ":1", "app@sha256:abcd", "localhost:5000/"}) {
    auto result = split_tag_target(bad);
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

// Podman lists fully qualified names; Docker's short form is what we use.
TEST(EngineDetail, FamiliarName) {
  using engine_detail::familiar_name;
  EXPECT_EQ(familiar_name("docker.io/library/app:1"), "app:1");
  EXPECT_EQ(familiar_name("docker.io/library/app"), "app");
  EXPECT_EQ(familiar_name("docker.io/team/app:1"), "team/app:1");
  EXPECT_EQ(familiar_name("docker.io/library/a/b:1"), "library/a/b:1");
  EXPECT_EQ(familiar_name("app:1"), "app:1");
  EXPECT_EQ(familiar_name("localhost/app:1"), "localhost/app:1");
  EXPECT_EQ(familiar_name("registry:5000/app:1"), "registry:5000/app:1");
  EXPECT_EQ(familiar_name("docker.io.example/app:1"), "docker.io.example/app:1");
  EXPECT_EQ(familiar_name("<none>:<none>"), "<none>:<none>");
}

// What we send: Podman would read a short name as localhost/...
TEST(EngineDetail, QualifiedName) {
  using engine_detail::qualified_name;
  EXPECT_EQ(qualified_name("app:1"), "docker.io/library/app:1");
  EXPECT_EQ(qualified_name("app"), "docker.io/library/app");
  EXPECT_EQ(qualified_name("team/app:1"), "docker.io/team/app:1");
  EXPECT_EQ(qualified_name("docker.io/library/app:1"), "docker.io/library/app:1");
  EXPECT_EQ(qualified_name("localhost/app:1"), "localhost/app:1");
  EXPECT_EQ(qualified_name("localhost:5000/app:1"), "localhost:5000/app:1");
  EXPECT_EQ(qualified_name("reg.example/team/app:1"), "reg.example/team/app:1");
  EXPECT_EQ(qualified_name("Reg/app:1"), "Reg/app:1");
  for (const char* name : {"app:1", "team/app:1", "localhost/app:1", "reg.example/app:1"})
    EXPECT_EQ(engine_detail::familiar_name(qualified_name(name)), name);
}

TEST(EngineDetail, ApiPathPrefixTakesTheOlderVersion) {
  EXPECT_EQ(api_path_prefix("1.41"), "/v1.41");
  EXPECT_EQ(api_path_prefix("1.24"), "/v1.24");
  EXPECT_EQ(api_path_prefix("1.52"), "/v" + std::string(kMaxApiVersion));
  EXPECT_EQ(api_path_prefix(""), "");
  EXPECT_EQ(api_path_prefix("garbage"), "");
}

TEST(EngineDetail, ErrorMessageFromBody) {
  EXPECT_EQ(error_message_from_body(R"({"message":"No such image: x:1\n"})", 404),
            "No such image: x:1");
  EXPECT_EQ(error_message_from_body("plain text\n", 500), "plain text");
  EXPECT_EQ(error_message_from_body("", 502), "HTTP 502");
  EXPECT_EQ(error_message_from_body(std::string(2000, 'x'), 500).size(), 503u);
}

TEST(ResolveEngineAddress, FlagThenDockerHostThenDefault) {
  ::setenv("DOCKER_HOST", "unix:///run/from-env.sock", 1);
  EXPECT_EQ(resolve_engine_address("unix:///run/flag.sock").value(), "unix:///run/flag.sock");
  EXPECT_EQ(resolve_engine_address("").value(), "unix:///run/from-env.sock");
  ::unsetenv("DOCKER_HOST");
  // The first engine socket found on this machine, else Docker's default.
  std::string found = resolve_engine_address("").value();
  EXPECT_TRUE(found == "unix:///var/run/docker.sock" || found == "unix:///run/podman/podman.sock" ||
              found == "containerd:///run/containerd/containerd.sock" ||
              found == "containerd:///run/k3s/containerd/containerd.sock")
      << found;
}

TEST(ResolveEngineAddress, ContainerdAddresses) {
  EXPECT_EQ(resolve_engine_address("containerd:///run/k3s/containerd/containerd.sock").value(),
            "containerd:///run/k3s/containerd/containerd.sock");
  auto bad = resolve_engine_address("containerd://run/containerd.sock");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("--engine"), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("absolute"), std::string::npos) << bad.error().message();
}

TEST(EngineDetail, ParseContainerdAddress) {
  auto plain =
      engine_detail::parse_containerd_address("containerd:///run/containerd/containerd.sock");
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(plain->socket, "/run/containerd/containerd.sock");
  EXPECT_EQ(plain->name_space, "k8s.io");  // where the kubelet looks
  EXPECT_EQ(plain->snapshotter, "overlayfs");

  auto full = engine_detail::parse_containerd_address(
      "containerd:///var/tmp/c.sock?namespace=default&snapshotter=native");
  ASSERT_TRUE(full) << full.error().message();
  EXPECT_EQ(full->socket, "/var/tmp/c.sock");
  EXPECT_EQ(full->name_space, "default");
  EXPECT_EQ(full->snapshotter, "native");

  for (const char* bad :
       {"unix:///run/c.sock", "containerd://", "containerd://relative.sock",
        "containerd:///c.sock?namespace", "containerd:///c.sock?colour=blue",
        "containerd:///c.sock?namespace=-bad", "containerd:///c.sock?snapshotter=a/b"}) {
    auto parsed = engine_detail::parse_containerd_address(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(parsed.error().message().find(bad), std::string::npos) << parsed.error().message();
    }
  }
}

TEST(EngineClient, ContainerdThatIsNotThereIsUnavailable) {
  EngineClient client(EngineOptions{.address = "containerd:///nonexistent/containerd.sock",
                                    .io_timeout = std::chrono::seconds(2)});
  auto status = client.ping();
  ASSERT_FALSE(status);
  EXPECT_TRUE(status.error().code() == ErrorCode::kUnavailable ||
              status.error().code() == ErrorCode::kTimeout)
      << status.error().message();
  EXPECT_NE(status.error().message().find("containerd:///nonexistent/containerd.sock"),
            std::string::npos)
      << status.error().message();
}

TEST(ResolveEngineAddress, RejectsOtherSchemes) {
  auto tcp = resolve_engine_address("tcp://10.0.0.1:2375");
  ASSERT_FALSE(tcp);
  EXPECT_EQ(tcp.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(tcp.error().message().find("tcp://10.0.0.1:2375"), std::string::npos);
  EXPECT_NE(tcp.error().message().find("unix://"), std::string::npos);

  ::setenv("DOCKER_HOST", "ssh://user@host", 1);
  auto ssh = resolve_engine_address("");
  ::unsetenv("DOCKER_HOST");
  ASSERT_FALSE(ssh);
  EXPECT_EQ(ssh.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(ssh.error().message().find("DOCKER_HOST"), std::string::npos);

  EXPECT_EQ(resolve_engine_address("/var/run/docker.sock").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolve_engine_address("unix://").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolve_engine_address("unix:///" + std::string(200, 'a')).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(EngineClient, NonUnixAddressIsUnsupported) {
  EngineClient client(EngineOptions{.address = "tcp://127.0.0.1:2375"});
  auto status = client.ping();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace deltasync
