// The registry client's authentication without the network
// (common/registry/registry_auth.h): WWW-Authenticate challenges as
// registries send them (and malformed ones refused by name), the Docker
// CLI's config.json as `docker login` writes it, token endpoint answers, the
// token cache and base64.
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "common/io/file.h"
#include "common/registry/registry_auth.h"
#include "tests/support/test_files.h"

namespace deltasync::registry_detail {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::vector<AuthChallenge> challenges_of(std::string_view value) {
  auto parsed = parse_www_authenticate(value);
  EXPECT_TRUE(parsed) << value << ": " << parsed.error().message();
  return parsed ? *parsed : std::vector<AuthChallenge>{};
}

// ---- WWW-Authenticate ------------------------------------------------------

TEST(WwwAuthenticateTest, BearerWithRealmServiceAndScope) {
  // What Docker Hub and distribution's token auth send.
  auto got = challenges_of(
      "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
      "scope=\"repository:library/busybox:pull\"");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].scheme, "bearer");
  EXPECT_EQ(got[0].param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ(got[0].param("service"), "registry.docker.io");
  EXPECT_EQ(got[0].param("scope"), "repository:library/busybox:pull");
  EXPECT_EQ(got[0].param("error"), "");
}

TEST(WwwAuthenticateTest, QuotedCommasEscapesAndCase) {
  auto got = challenges_of(
      "BEARER Realm=\"https://h/token\" , Scope=\"repository:a/b:pull,push\","
      "error=\"insufficient_scope\",note=\"say \\\"hi\\\", then \\\\ go\"");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].scheme, "bearer");
  EXPECT_EQ(got[0].param("realm"), "https://h/token");
  EXPECT_EQ(got[0].param("scope"), "repository:a/b:pull,push");  // the comma stays inside
  EXPECT_EQ(got[0].param("error"), "insufficient_scope");
  EXPECT_EQ(got[0].param("note"), "say \"hi\", then \\ go");
}

TEST(WwwAuthenticateTest, SeveralChallengesInOneValue) {
  auto got = challenges_of(
      "Basic realm=\"Registry Realm\", Bearer realm=\"https://h/t\",service=s, "
      "Negotiate abc+/9==, Other");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].scheme, "basic");
  EXPECT_EQ(got[0].param("realm"), "Registry Realm");
  EXPECT_EQ(got[1].scheme, "bearer");
  EXPECT_EQ(got[1].param("realm"), "https://h/t");
  EXPECT_EQ(got[1].param("service"), "s");  // unquoted token
  EXPECT_EQ(got[2].scheme, "negotiate");
  EXPECT_EQ(got[2].token68, "abc+/9==");
  EXPECT_TRUE(got[2].params.empty());
  EXPECT_EQ(got[3].scheme, "other");
}

TEST(WwwAuthenticateTest, BasicAloneAndUnquotedUrls) {
  auto basic = challenges_of("Basic realm=\"basic-realm\"");
  ASSERT_EQ(basic.size(), 1u);
  EXPECT_EQ(basic[0].scheme, "basic");
  EXPECT_EQ(basic[0].param("realm"), "basic-realm");
  auto bare = challenges_of("Basic");
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0].scheme, "basic");
  // Some registries do not quote the realm URL.
  auto unquoted = challenges_of("Bearer realm=https://h:5001/token?x=1,service=reg");
  ASSERT_EQ(unquoted.size(), 1u);
  EXPECT_EQ(unquoted[0].param("realm"), "https://h:5001/token?x=1");
  EXPECT_EQ(unquoted[0].param("service"), "reg");
}

TEST(WwwAuthenticateTest, MalformedValuesAreRefusedByName) {
  for (std::string_view bad : {
           "",                                  // nothing
           "  ,  ",                             // still nothing
           "realm=\"x\"",                       // a parameter before any scheme
           "Bearer realm=\"https://h/token",    // the quote does not end
           "Bearer realm=\"a\"b",               // garbage after a quoted value
           "Bearer realm=\"a\" service=\"b\"",  // no comma between parameters
           "Bearer realm=,service=x",           // no value
           "Bearer realm==x",                   // two '='
           "Bearer \"realm\"=x",                // a quoted name
           "Bearer realm=\"x\";service=\"y\"",  // ';' is not a separator
       }) {
    auto parsed = parse_www_authenticate(bad);
    ASSERT_FALSE(parsed) << "accepted: '" << bad << "'";
    EXPECT_EQ(parsed.error().code(), ErrorCode::kProtocol);
    EXPECT_NE(parsed.error().message().find("WWW-Authenticate '" + std::string(bad) + "'"),
              std::string::npos)
        << parsed.error().message();
  }
}

// ---- config.json -----------------------------------------------------------

CredentialLookup lookup(std::string_view json, std::string_view registry) {
  auto found = parse_docker_config(json, registry, "/x/config.json");
  EXPECT_TRUE(found) << found.error().message();
  return found ? *found : CredentialLookup{};
}

TEST(DockerConfigTest, AuthIsBase64OfUserColonPassword) {
  // "alice:pa:ss" (a colon in the password stays in it)
  std::string json =
      R"({"auths":{"reg.example.com:5000":{"auth":")" + base64_encode("alice:pa:ss") + R"("}}})";
  auto got = lookup(json, "reg.example.com:5000");
  EXPECT_EQ(got.credentials.username, "alice");
  EXPECT_EQ(got.credentials.password, "pa:ss");
  EXPECT_FALSE(got.unusable);
  // Another registry (or another port) gets nothing.
  EXPECT_TRUE(lookup(json, "reg.example.com").credentials.empty());
  EXPECT_TRUE(lookup(json, "other.example.com:5000").credentials.empty());
}

TEST(DockerConfigTest, UsernameAndPasswordFieldsAndIdentityToken) {
  auto got = lookup(R"({"auths":{"reg":{"username":"bob","password":"pw"}}})", "reg");
  EXPECT_EQ(got.credentials.username, "bob");
  EXPECT_EQ(got.credentials.password, "pw");
  auto token = lookup(R"({"auths":{"reg":{"auth":")" + base64_encode("<token>:") +
                          R"(","identitytoken":"refresh-me"}}})",
                      "reg");
  EXPECT_EQ(token.credentials.username, "<token>");
  EXPECT_EQ(token.credentials.identity_token, "refresh-me");
  EXPECT_FALSE(token.credentials.empty());
}

TEST(DockerConfigTest, KeysWithAndWithoutSchemeAndPath) {
  std::string auth = base64_encode("u:p");
  for (std::string key :
       {"reg.example.com", "https://reg.example.com", "http://reg.example.com/",
        "https://reg.example.com/v1/", "REG.Example.COM", "https://REG.example.com/v2/"}) {
    std::string json = R"({"auths":{")" + key + R"(":{"auth":")" + auth + R"("}}})";
    EXPECT_EQ(lookup(json, "reg.example.com").credentials.username, "u") << key;
  }
  // A key with a port is not the host without one.
  std::string json = R"({"auths":{"https://reg.example.com:5000/v1/":{"auth":")" + auth + R"("}}})";
  EXPECT_TRUE(lookup(json, "reg.example.com").credentials.empty());
  EXPECT_EQ(lookup(json, "reg.example.com:5000").credentials.username, "u");
}

TEST(DockerConfigTest, DockerHubKeyServesEveryHubName) {
  // `docker login` without a server writes this key.
  std::string json = R"({"auths":{"https://index.docker.io/v1/":{"auth":")" +
                     base64_encode("hubuser:hubpass") + R"("}}})";
  for (const char* name : {"docker.io", "index.docker.io", "registry-1.docker.io"}) {
    auto got = lookup(json, name);
    EXPECT_EQ(got.credentials.username, "hubuser") << name;
    EXPECT_EQ(got.credentials.password, "hubpass") << name;
  }
  EXPECT_TRUE(lookup(json, "ghcr.io").credentials.empty());
}

TEST(DockerConfigTest, CredentialHelpersAreNamedNotRun) {
  auto helper = lookup(R"({"credHelpers":{"reg":"ecr-login"},"auths":{"reg":{"auth":")" +
                           base64_encode("u:p") + R"("}}})",
                       "reg");
  ASSERT_TRUE(helper.unusable);  // credHelpers win, as in the Docker CLI
  EXPECT_EQ(helper.unusable->code(), ErrorCode::kUnsupported);
  EXPECT_NE(helper.unusable->message().find("docker-credential-ecr-login"), std::string::npos);
  EXPECT_NE(helper.unusable->message().find("/x/config.json"), std::string::npos);
  EXPECT_NE(helper.unusable->message().find("--registry-auth"), std::string::npos)
      << helper.unusable->message();  // an option that exists
  // credsStore with the empty auths entry `docker login` leaves.
  auto store = lookup(R"({"credsStore":"desktop","auths":{"reg":{}}})", "reg");
  ASSERT_TRUE(store.unusable);
  EXPECT_NE(store.unusable->message().find("docker-credential-desktop"), std::string::npos);
  // A credsStore says nothing about registries without an entry.
  EXPECT_FALSE(lookup(R"({"credsStore":"desktop","auths":{"reg":{}}})", "other").unusable);
}

TEST(DockerConfigTest, MalformedJsonAndBadAuthNameTheFile) {
  for (std::string_view bad : {"{\"auths\": {", "not json", "[1,2]"}) {
    auto got = parse_docker_config(bad, "reg", "/home/u/.docker/config.json");
    ASSERT_FALSE(got) << bad;
    EXPECT_EQ(got.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(got.error().message().starts_with("/home/u/.docker/config.json: "))
        << got.error().message();
  }
  for (std::string auth : {std::string("%%%"), base64_encode("no-colon")}) {
    auto got =
        parse_docker_config(R"({"auths":{"reg":{"auth":")" + auth + R"("}}})", "reg", "/c.json");
    ASSERT_FALSE(got) << auth;
    EXPECT_EQ(got.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(got.error().message().find("/c.json: auths \"reg\""), std::string::npos)
        << got.error().message();
  }
  // Entries that are not objects are no credentials, not an error.
  EXPECT_TRUE(lookup(R"({"auths":{"reg":"x"},"other":1})", "reg").credentials.empty());
}

class DockerConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "registry-auth-test-");
    ASSERT_TRUE(dir) << dir.error().message();
    dir_.emplace(std::move(*dir));
  }
  void TearDown() override {
    if (!changed_env_) return;
    if (saved_docker_config_) {
      ::setenv("DOCKER_CONFIG", saved_docker_config_->c_str(), 1);
    } else {
      ::unsetenv("DOCKER_CONFIG");
    }
  }
  void set_docker_config(const fs::path& dir) {
    if (!changed_env_) {
      if (const char* old = std::getenv("DOCKER_CONFIG")) saved_docker_config_ = old;
      changed_env_ = true;
    }
    ::setenv("DOCKER_CONFIG", dir.c_str(), 1);
  }
  fs::path path(const std::string& name) const { return dir_->path() / name; }

  std::optional<TempDir> dir_;
  std::optional<std::string> saved_docker_config_;
  bool changed_env_ = false;
};

TEST_F(DockerConfigFileTest, ReadsTheGivenFileOrDockerConfigDir) {
  std::string json = R"({"auths":{"reg:5000":{"auth":")" + base64_encode("u:p") + R"("}}})";
  testing::write_file(path("given.json"), json);
  auto given = load_docker_config(path("given.json").string(), "reg:5000");
  ASSERT_TRUE(given) << given.error().message();
  EXPECT_EQ(given->credentials.username, "u");

  testing::write_file(path("cfgdir/config.json"), json);
  set_docker_config(path("cfgdir"));
  auto from_env = load_docker_config("", "reg:5000");
  ASSERT_TRUE(from_env) << from_env.error().message();
  EXPECT_EQ(from_env->credentials.password, "p");
}

TEST_F(DockerConfigFileTest, MissingFileMeansNoCredentials) {
  auto missing = load_docker_config(path("nope.json").string(), "reg");
  ASSERT_TRUE(missing) << missing.error().message();
  EXPECT_TRUE(missing->credentials.empty());
  EXPECT_FALSE(missing->unusable);
  set_docker_config(path("empty-dir"));
  auto none = load_docker_config("", "reg");
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_TRUE(none->credentials.empty());
}

TEST_F(DockerConfigFileTest, MalformedOrUnreadableFileIsAnErrorNamingIt) {
  testing::write_file(path("bad.json"), "{\"auths\": {\"reg\": ");
  auto bad = load_docker_config(path("bad.json").string(), "reg");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(bad.error().message().starts_with(path("bad.json").string() + ": not valid JSON"))
      << bad.error().message();
  // A directory where the file should be: not "no credentials", not "bad JSON".
  fs::create_directories(path("config-dir.json"));
  auto dir = load_docker_config(path("config-dir.json").string(), "reg");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), ErrorCode::kIo);
  EXPECT_NE(dir.error().message().find(path("config-dir.json").string()), std::string::npos)
      << dir.error().message();
  EXPECT_EQ(dir.error().message().find("JSON"), std::string::npos) << dir.error().message();
}

// ---- token answers and the cache ---------------------------------------------

TEST(TokenResponseTest, TokenOrAccessTokenAndExpiry) {
  auto now = Clock::now();
  auto token = parse_token_response(R"({"token":"t1","expires_in":300})", now);
  ASSERT_TRUE(token) << token.error().message();
  EXPECT_EQ(token->token, "t1");
  EXPECT_EQ(token->expires, now + seconds(300));
  // OAuth2 servers answer access_token; "token" wins when both are there.
  auto oauth = parse_token_response(R"({"access_token":"a1","expires_in":120})", now);
  ASSERT_TRUE(oauth);
  EXPECT_EQ(oauth->token, "a1");
  EXPECT_EQ(oauth->expires, now + seconds(120));
  auto both = parse_token_response(R"({"token":"t","access_token":"a"})", now);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->token, "t");
  auto empty_token = parse_token_response(R"({"token":"","access_token":"a"})", now);
  ASSERT_TRUE(empty_token);
  EXPECT_EQ(empty_token->token, "a");
}

TEST(TokenResponseTest, ExpiryDefaultsToAndNeverGoesBelowSixtySeconds) {
  auto now = Clock::now();
  for (std::string body :
       {R"({"token":"t"})", R"({"token":"t","expires_in":0})", R"({"token":"t","expires_in":5})",
        R"({"token":"t","expires_in":-9})", R"({"token":"t","expires_in":"soon"})"}) {
    auto token = parse_token_response(body, now);
    ASSERT_TRUE(token) << body;
    EXPECT_EQ(token->expires, now + seconds(60)) << body;
  }
  auto fractional = parse_token_response(R"({"token":"t","expires_in":900.5})", now);
  ASSERT_TRUE(fractional);
  EXPECT_EQ(fractional->expires, now + seconds(900));
}

TEST(TokenResponseTest, NoTokenOrNotJsonIsAProtocolError) {
  auto now = Clock::now();
  for (std::string_view body : {R"({"expires_in":60})", R"({"token":7})", "[]", "<html>", ""}) {
    auto token = parse_token_response(body, now);
    ASSERT_FALSE(token) << body;
    EXPECT_EQ(token.error().code(), ErrorCode::kProtocol) << body;
    EXPECT_NE(token.error().message().find("token answer"), std::string::npos)
        << token.error().message();
  }
}

TEST(TokenCacheTest, PerScopeUntilTenSecondsBeforeExpiry) {
  auto now = Clock::now();
  TokenCache cache;
  cache.put("repository:a:pull", {"ta", now + seconds(60)});
  cache.put("repository:b:pull,push", {"tb", now + seconds(300)});
  EXPECT_EQ(cache.get("repository:a:pull", now), "ta");
  EXPECT_EQ(cache.get("repository:b:pull,push", now), "tb");
  EXPECT_FALSE(cache.get("repository:a:pull,push", now));  // another scope
  EXPECT_EQ(cache.get("repository:a:pull", now + seconds(49)), "ta");
  EXPECT_FALSE(cache.get("repository:a:pull", now + seconds(50)));
  cache.forget("repository:b:pull,push");
  EXPECT_FALSE(cache.get("repository:b:pull,push", now));
}

TEST(Base64Test, RoundTripsAndRefusesOtherCharacters) {
  for (std::string text :
       std::vector<std::string>{"", "a", "ab", "abc", "user:pass", std::string("\0\xff\x10", 3)}) {
    auto back = base64_decode(base64_encode(text));
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, text);
  }
  EXPECT_EQ(base64_encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_EQ(base64_decode("dXNlcjpwYXNz"), "user:pass");  // padding optional
  EXPECT_FALSE(base64_decode("dXNl cjpw"));
  EXPECT_FALSE(base64_decode("dXNl-cjpw"));
  EXPECT_EQ(basic_authorization({"user", "pass", ""}), "Basic dXNlcjpwYXNz");
}

}  // namespace
}  // namespace deltasync::registry_detail
