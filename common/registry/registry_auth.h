// Registry authentication, the parts that need no network: credentials from
// the Docker CLI's config.json, WWW-Authenticate challenges, token answers,
// and the cache of Bearer tokens per scope. The registry client
// (registry_client.cpp) does the HTTP and calls these.
//
// config.json: "auths" entries keyed by "host[:port]" or a URL of it
// ("https://host/v1/"), host names compared in lower case, with base64
// "auth" ("user:password") or "username" + "password", and "identitytoken"
// (an OAuth2 refresh token). Docker Hub's names (docker.io,
// registry-1.docker.io, index.docker.io, and the key `docker login` writes,
// "https://index.docker.io/v1/") are one registry. Credential
// helpers ("credsStore", "credHelpers") are not run: when they hold this
// registry's credentials, lookup says so (kUnsupported, naming the helper)
// and the client reports it if and when the registry asks for credentials.
//
// Thread safety: functions are reentrant; TokenCache has one owner.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/util/result.h"

namespace deltasync::registry_detail {

struct Credentials {
  std::string username, password;
  std::string identity_token;  // refresh token from `docker login` with an identity provider
  bool empty() const { return username.empty() && identity_token.empty(); }
};

struct CredentialLookup {
  Credentials credentials;
  // Set when config.json names a helper for this registry: the error to give
  // when the registry wants credentials.
  std::optional<Error> unusable;
};

// Finds `registry`'s credentials in config.json text (`path` names it in
// errors). Malformed JSON, a document that is not an object, or a bad "auth"
// value: kInvalidArgument.
Result<CredentialLookup> parse_docker_config(std::string_view json, std::string_view registry,
                                             const std::string& path);
// The same from a file: `path`, or "" for $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json. A missing file means no credentials; one that
// exists but cannot be read is an error naming it (kIo).
Result<CredentialLookup> load_docker_config(const std::string& path, std::string_view registry);
// The file load_docker_config reads for `path` ("" when there is no HOME).
std::string docker_config_file(const std::string& path);

// One challenge of a WWW-Authenticate value: scheme in lower case ("basic",
// "bearer"), parameters by lower-case name (quoted values unquoted, with
// their backslash escapes undone), or a token68 ("Negotiate abc==").
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
  std::string token68;
  std::string param(const std::string& name) const;
};
// Every challenge in one header value ("Bearer realm=\"x\",scope=\"a,b\", Basic realm=y").
// kProtocol naming the value and the offset when it is malformed: empty, an
// unterminated quoted value, a parameter before any scheme or without a
// value, a value not followed by ',' or the end.
Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view value);

struct BearerToken {
  std::string token;
  std::chrono::steady_clock::time_point expires;
};
// A token endpoint's JSON answer: "token" (preferred) or "access_token",
// "expires_in" seconds (default 60, and never less than 60, as the Docker
// CLI). kProtocol when neither token is there or the body is not JSON.
Result<BearerToken> parse_token_response(std::string_view body,
                                         std::chrono::steady_clock::time_point now);

// "Basic <base64(user:password)>".
std::string basic_authorization(const Credentials& credentials);
std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding optional; nullopt on other characters.
std::optional<std::string> base64_decode(std::string_view text);

// Bearer tokens per scope ("repository:team/app:pull,push"), dropped 10 s
// before they expire.
class TokenCache {
 public:
  std::optional<std::string> get(const std::string& scope,
                                 std::chrono::steady_clock::time_point now) const;
  void put(const std::string& scope, BearerToken token);
  void forget(const std::string& scope) { tokens_.erase(scope); }

 private:
  std::map<std::string, BearerToken> tokens_;
};

}  // namespace deltasync::registry_detail
