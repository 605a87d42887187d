// Private helpers of the engine client; see engine_detail.h.
//
// Thread safety: pure functions on values.
#include "common/engine/engine_detail.h"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>

namespace deltasync::engine_detail {

namespace {

constexpr std::string_view kDockerHub = "docker.io/";
constexpr std::string_view kOfficial = "library/";

bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string percent_encode(std::string_view text, std::string_view keep) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (is_unreserved(c) || keep.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0f]);
    }
  }
  return out;
}

// "1.41" -> {1, 41}.
std::optional<std::pair<int, int>> parse_version(std::string_view text) {
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  int major = 0;
  int minor = 0;
  auto [p1, e1] = std::from_chars(text.data(), text.data() + dot, major);
  auto [p2, e2] = std::from_chars(text.data() + dot + 1, text.data() + text.size(), minor);
  if (e1 != std::errc() || p1 != text.data() + dot || e2 != std::errc() ||
      p2 != text.data() + text.size()) {
    return std::nullopt;
  }
  return std::pair{major, minor};
}

std::string trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

}  // namespace

std::string url_encode_path(std::string_view text) {
  return percent_encode(text, ":@/");
}

std::string url_encode_query(std::string_view text) {
  return percent_encode(text, "");
}

Result<std::pair<std::string, std::string>> split_tag_target(std::string_view target) {
  if (target.empty()) return make_error(ErrorCode::kInvalidArgument, "empty tag target");
  if (target.find('@') != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "cannot tag as '" + std::string(target) +
                          "': a tag target is repo[:tag], not a digest reference");
  }
  size_t slash = target.rfind('/');
  size_t colon = target.rfind(':');
  std::string repo(target);
  std::string tag = "latest";
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    repo = std::string(target.substr(0, colon));
    tag = std::string(target.substr(colon + 1));
  }
  if (repo.empty() || tag.empty() || repo.back() == '/') {
    return make_error(ErrorCode::kInvalidArgument,
                      "bad tag target '" + std::string(target) + "' (expected repo[:tag])");
  }
  return std::pair{std::move(repo), std::move(tag)};
}

std::string familiar_name(std::string_view name) {
  if (!name.starts_with(kDockerHub)) return std::string(name);
  std::string_view rest = name.substr(kDockerHub.size());
  // Only official images drop "library/": "library/a/b" stays as it is.
  if (rest.starts_with(kOfficial) && rest.find('/', kOfficial.size()) == std::string_view::npos) {
    rest.remove_prefix(kOfficial.size());
  }
  if (rest.empty()) return std::string(name);
  return std::string(rest);
}

std::string qualified_name(std::string_view name) {
  if (name.empty()) return {};
  size_t slash = name.find('/');
  if (slash == std::string_view::npos)
    return std::string(kDockerHub) + std::string(kOfficial) + std::string(name);
  // Docker's rule: the first component is a registry if it has '.' or ':',
  // is "localhost", or has upper-case letters (never a repository's).
  std::string_view first = name.substr(0, slash);
  bool registry =
      first == "localhost" || first.find_first_of(".:") != std::string_view::npos ||
      std::any_of(first.begin(), first.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (registry) return std::string(name);
  return std::string(kDockerHub) + std::string(name);
}

std::string api_path_prefix(std::string_view engine_api_version) {
  auto engine = parse_version(engine_api_version);
  if (!engine) return {};
  auto ours = parse_version(kMaxApiVersion);
  auto chosen = std::min(*engine, *ours);
  return "/v" + std::to_string(chosen.first) + "." + std::to_string(chosen.second);
}

std::string error_message_from_body(std::string_view body, unsigned status) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_object()) {
    auto it = json.find("message");
    if (it != json.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      return trim(it->get_ref<const std::string&>());
    }
  }
  std::string text = trim(body);
  if (text.size() > 500) text = text.substr(0, 500) + "...";
  if (text.empty()) return "HTTP " + std::to_string(status);
  return text;
}

namespace {

// containerd's identifier rule for namespaces and snapshotter names
// (identifiers.Validate): letters, digits, '.', '_', '-'; alphanumeric at
// both ends; at most 76 characters.
bool valid_containerd_identifier(std::string_view id) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (id.empty() || id.size() > 76 || !alnum(id.front()) || !alnum(id.back())) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

}  // namespace

Result<ContainerdAddress> parse_containerd_address(std::string_view address) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "engine address " + std::string(address) + ": " + why +
                          " (write containerd:///run/containerd/containerd.sock"
                          "[?namespace=k8s.io&snapshotter=overlayfs])");
  };
  if (!address.starts_with(kContainerdScheme)) return bad("not a containerd:// address");
  std::string_view rest = address.substr(kContainerdScheme.size());
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  ContainerdAddress parsed;
  if (rest.empty() || rest.front() != '/') return bad("the socket path must be absolute");
  if (rest.size() > 107) return bad("socket path longer than 107 bytes (the unix socket limit)");
  parsed.socket = std::string(rest);
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query = pair.size() < query.size() ? query.substr(pair.size() + 1) : std::string_view();
    auto eq = pair.find('=');
    if (eq == std::string_view::npos)
      return bad("parameter '" + std::string(pair) + "' has no value");
    std::string_view key = pair.substr(0, eq), value = pair.substr(eq + 1);
    if (!valid_containerd_identifier(value))
      return bad("'" + std::string(value) + "' is not a valid " + std::string(key));
    if (key == "namespace") {
      parsed.name_space = std::string(value);
    } else if (key == "snapshotter") {
      parsed.snapshotter = std::string(value);
    } else {
      return bad("unknown parameter '" + std::string(key) + "' (namespace, snapshotter)");
    }
  }
  return parsed;
}

}  // namespace deltasync::engine_detail
