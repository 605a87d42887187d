// Registry authentication without the network: config.json lookup,
// WWW-Authenticate parsing, token answers, the token cache; see
// registry_auth.h. JSON via nlohmann::json; exceptions do not leave here.
#include "common/registry/registry_auth.h"

#include <cctype>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "common/io/file.h"

namespace deltasync::registry_detail {

namespace {

using Json = nlohmann::json;
constexpr auto kTokenMargin = std::chrono::seconds(10);
constexpr long kDefaultTokenSeconds = 60;  // distribution's token spec default
constexpr long kMinimumTokenSeconds = 60;  // and its minimum ("should never be less")
constexpr size_t kConfigLimit = 4 << 20;   // a config.json larger than this is not one

// "https://host:5000/v1/" -> "host:5000": how the Docker CLI matches keys
// (host names in lower case). Docker Hub's names are one registry: `docker
// login` keeps its credentials under "https://index.docker.io/v1/", and its
// API is at registry-1.docker.io.
std::string normalize_registry_key(std::string_view key) {
  if (size_t scheme = key.find("://"); scheme != std::string_view::npos) {
    key.remove_prefix(scheme + 3);
  }
  std::string host(key.substr(0, key.find('/')));
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "index.docker.io" || host == "registry-1.docker.io" || host == "docker.io") {
    return "docker.io";
  }
  return host;
}

std::string string_member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string unsupported_helper(const std::string& helper, std::string_view registry,
                               const std::string& path) {
  return path + ": the credentials for " + std::string(registry) +
         " are kept by the credential helper docker-credential-" + helper +
         ", which deltasync does not run; give --registry-auth a config.json with an "
         "\"auths\" entry (\"auth\": base64 of user:password) for " +
         std::string(registry) + " instead";
}

}  // namespace

Result<CredentialLookup> parse_docker_config(std::string_view json, std::string_view registry,
                                             const std::string& path) {
  Json config;
  try {
    config = Json::parse(json);
  } catch (const Json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument,
                      path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  CredentialLookup lookup;
  if (!config.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, path + ": not a JSON object");
  }
  const std::string wanted = normalize_registry_key(registry);
  // credHelpers win over auths, as in the Docker CLI.
  if (auto helpers = config.find("credHelpers"); helpers != config.end() && helpers->is_object()) {
    for (const auto& [key, value] : helpers->items()) {
      if (normalize_registry_key(key) == wanted && value.is_string()) {
        lookup.unusable = Error(ErrorCode::kUnsupported,
                                unsupported_helper(value.get<std::string>(), registry, path));
        return lookup;
      }
    }
  }
  bool listed = false;
  if (auto auths = config.find("auths"); auths != config.end() && auths->is_object()) {
    for (const auto& [key, entry] : auths->items()) {
      if (normalize_registry_key(key) != wanted || !entry.is_object()) continue;
      listed = true;
      Credentials found;
      std::string auth = string_member(entry, "auth");
      if (!auth.empty()) {
        auto decoded = base64_decode(auth);
        size_t colon = decoded ? decoded->find(':') : std::string::npos;
        if (colon == std::string::npos) {
          return make_error(
              ErrorCode::kInvalidArgument,
              path + ": auths \"" + key + "\": \"auth\" is not base64 of user:password");
        }
        found.username = decoded->substr(0, colon);
        found.password = decoded->substr(colon + 1);
      } else {
        found.username = string_member(entry, "username");
        found.password = string_member(entry, "password");
      }
      found.identity_token = string_member(entry, "identitytoken");
      if (!found.empty()) {
        lookup.credentials = std::move(found);
        return lookup;
      }
    }
  }
  // With a credsStore, `docker login` leaves an empty auths entry: the
  // credentials are in the store. Without an entry there is nothing to find.
  std::string store = string_member(config, "credsStore");
  if (listed && !store.empty()) {
    lookup.unusable = Error(ErrorCode::kUnsupported, unsupported_helper(store, registry, path));
  }
  return lookup;
}

std::string docker_config_file(const std::string& path) {
  if (!path.empty()) return path;
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return std::string(dir) + "/config.json";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.docker/config.json";
  }
  return {};
}

Result<CredentialLookup> load_docker_config(const std::string& path, std::string_view registry) {
  std::string file = docker_config_file(path);
  if (file.empty()) return CredentialLookup{};
  auto text = read_small_file(file, kConfigLimit);
  if (!text) {
    if (text.error().code() == ErrorCode::kNotFound) return CredentialLookup{};  // no credentials
    return std::unexpected(text.error());  // "open PATH: Permission denied", "read PATH: ..."
  }
  return parse_docker_config(*text, registry, file);
}

std::string AuthChallenge::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view value) {
  // RFC 9110 11.6.1: 1#( auth-scheme [ 1*SP ( token68 / #auth-param ) ] ),
  // auth-param = token BWS "=" BWS ( token / quoted-string ). Unquoted values
  // are read up to the next comma or space (registries send realm=URL).
  std::vector<AuthChallenge> challenges;
  size_t i = 0;
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kProtocol, "WWW-Authenticate '" + std::string(value) +
                                                "': " + why + " at offset " + std::to_string(i));
  };
  auto at = [&](char c) { return i < value.size() && value[i] == c; };
  auto skip_blanks = [&] {
    while (at(' ') || at('\t')) ++i;
  };
  auto is_tchar = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
  };
  auto token = [&] {
    size_t start = i;
    while (i < value.size() && is_tchar(value[i])) ++i;
    return std::string(value.substr(start, i - start));
  };
  auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  bool after_scheme = false;  // the last thing read was a scheme (a token68 may follow)
  bool has_token68 = false;   // the current challenge ended with a token68
  while (true) {
    while (at(' ') || at('\t') || at(',')) {
      if (at(',')) after_scheme = false;
      ++i;
    }
    if (i >= value.size()) break;
    std::string word = token();
    if (word.empty()) return bad(std::string("unexpected '") + value[i] + "'");
    size_t name_end = i;
    skip_blanks();
    if (!at('=')) {
      if (i < value.size() && !at(',') && i == name_end) {
        return bad(std::string("unexpected '") + value[i] + "'");
      }
      if (after_scheme) {
        // "Negotiate abc": a token68 after the scheme.
        challenges.back().token68 = word;
        after_scheme = false;
        has_token68 = true;
      } else {
        challenges.push_back(AuthChallenge{lower(word), {}, {}});
        after_scheme = true;
        has_token68 = false;
      }
      continue;
    }
    // "name=value", or a token68 with padding ("abc==") right after the scheme.
    size_t equals = i;
    while (at('=')) ++i;
    size_t padding_end = i;
    skip_blanks();
    if (after_scheme && (i >= value.size() || at(','))) {
      challenges.back().token68 = word + std::string(value.substr(equals, padding_end - equals));
      after_scheme = false;
      has_token68 = true;
      continue;
    }
    if (challenges.empty()) return bad("parameter '" + word + "' before any scheme");
    if (has_token68) return bad("parameter '" + word + "' after a token68");
    if (padding_end - equals > 1) {
      i = equals;
      return bad("'" + word + "' followed by more than one '='");
    }
    std::string param_value;
    if (at('"')) {
      ++i;
      bool closed = false;
      while (i < value.size()) {
        if (value[i] == '"') {
          closed = true;
          ++i;
          break;
        }
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        param_value += value[i++];
      }
      if (!closed) return bad("the quoted value of '" + word + "' does not end");
    } else {
      size_t start = i;
      while (i < value.size() && value[i] != ',' && value[i] != ' ' && value[i] != '\t') ++i;
      if (i == start) return bad("parameter '" + word + "' has no value");
      param_value = std::string(value.substr(start, i - start));
    }
    skip_blanks();
    if (i < value.size() && !at(',')) {
      return bad("expected ',' after the value of '" + word + "'");
    }
    challenges.back().params[lower(word)] = std::move(param_value);
    after_scheme = false;
  }
  if (challenges.empty()) return bad("no challenge");
  return challenges;
}

Result<BearerToken> parse_token_response(std::string_view body,
                                         std::chrono::steady_clock::time_point now) {
  try {
    Json answer = Json::parse(body);
    BearerToken token;
    if (answer.is_object()) {
      token.token = string_member(answer, "token");
      if (token.token.empty()) token.token = string_member(answer, "access_token");
    }
    if (token.token.empty()) {
      return make_error(ErrorCode::kProtocol, "the token answer has no \"token\"");
    }
    long seconds = kDefaultTokenSeconds;
    if (auto it = answer.find("expires_in"); it != answer.end() && it->is_number()) {
      // As the Docker CLI: never less than the spec's minimum of 60 s (a
      // server saying 0 would otherwise make every request fetch a token).
      seconds = std::max(static_cast<long>(it->get<double>()), kMinimumTokenSeconds);
    }
    token.expires = now + std::chrono::seconds(seconds);
    return token;
  } catch (const Json::exception& e) {
    return make_error(ErrorCode::kProtocol,
                      "the token answer is not JSON (" + std::string(e.what()) + ")");
  }
}

std::string basic_authorization(const Credentials& credentials) {
  return "Basic " + base64_encode(credentials.username + ":" + credentials.password);
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else {
      return std::nullopt;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

std::optional<std::string> TokenCache::get(const std::string& scope,
                                           std::chrono::steady_clock::time_point now) const {
  auto it = tokens_.find(scope);
  if (it == tokens_.end() || now + kTokenMargin >= it->second.expires) return std::nullopt;
  return it->second.token;
}

void TokenCache::put(const std::string& scope, BearerToken token) {
  tokens_[scope] = std::move(token);
}

}  // namespace deltasync::registry_detail
