// Registry authentication without the network: config.json lookup,
// WWW-Authenticate parsing, token answers, the token cache; see
// registry_auth.h. JSON via nlohmann::json; exceptions do not leave here.
#include "common/registry/registry_auth.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace deltasync::registry_detail {

namespace {

using Json = nlohmann::json;
constexpr auto kTokenMargin = std::chrono::seconds(10);
constexpr long kDefaultTokenSeconds = 60;  // distribution's token spec default

// "https://host:5000/v1/" -> "host:5000": how the Docker CLI matches keys.
std::string normalize_registry_key(std::string_view key) {
  if (size_t scheme = key.find("://"); scheme != std::string_view::npos) {
    key.remove_prefix(scheme + 3);
  }
  return std::string(key.substr(0, key.find('/')));
}

std::string string_member(const Json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string unsupported_helper(const std::string& helper, std::string_view registry,
                               const std::string& path) {
  return path + ": the credentials for " + std::string(registry) +
         " are kept by the credential helper docker-credential-" + helper +
         ", which deltasync does not run; use --registry-user/--registry-password, or an "
         "\"auths\" entry with \"auth\" for " +
         std::string(registry) + " in that file";
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
  if (!config.is_object()) return lookup;
  // credHelpers win over auths, as in the Docker CLI.
  if (auto helpers = config.find("credHelpers"); helpers != config.end() && helpers->is_object()) {
    for (const auto& [key, value] : helpers->items()) {
      if (normalize_registry_key(key) == registry && value.is_string()) {
        lookup.unusable = Error(ErrorCode::kUnsupported,
                                unsupported_helper(value.get<std::string>(), registry, path));
        return lookup;
      }
    }
  }
  bool listed = false;
  if (auto auths = config.find("auths"); auths != config.end() && auths->is_object()) {
    for (const auto& [key, entry] : auths->items()) {
      if (normalize_registry_key(key) != registry || !entry.is_object()) continue;
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

Result<CredentialLookup> load_docker_config(const std::string& path, std::string_view registry) {
  std::string file = path;
  if (file.empty()) {
    if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
      file = std::string(dir) + "/config.json";
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      file = std::string(home) + "/.docker/config.json";
    } else {
      return CredentialLookup{};
    }
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return CredentialLookup{};  // no file, no credentials
  std::stringstream text;
  text << in.rdbuf();
  return parse_docker_config(text.str(), registry, file);
}

std::string AuthChallenge::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

std::vector<AuthChallenge> parse_www_authenticate(std::string_view value) {
  std::vector<AuthChallenge> challenges;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < value.size() && value[i] != ' ' && value[i] != '\t' && value[i] != ',' &&
           value[i] != '=') {
      ++i;
    }
    return std::string(value.substr(start, i - start));
  };
  auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  while (true) {
    skip_space();
    if (i >= value.size()) break;
    std::string word = token();
    size_t after = i;
    while (after < value.size() && (value[after] == ' ' || value[after] == '\t')) ++after;
    bool is_param = after < value.size() && value[after] == '=' && !challenges.empty();
    if (!is_param) {
      challenges.push_back(AuthChallenge{lower(word), {}});
      continue;
    }
    // name=value or name="quoted \" value"
    i = after + 1;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::string param_value;
    if (i < value.size() && value[i] == '"') {
      ++i;
      while (i < value.size() && value[i] != '"') {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        param_value += value[i++];
      }
      ++i;  // closing quote
    } else {
      param_value = token();
    }
    challenges.back().params[lower(word)] = param_value;
  }
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
    if (auto it = answer.find("expires_in"); it != answer.end() && it->is_number_integer()) {
      seconds = std::max<long>(it->get<long>(), 0);
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
