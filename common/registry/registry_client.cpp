// RegistryClient over HttpConnection: the Distribution API calls, the
// authentication dance, redirects, and the one conversion of registry
// answers into Errors; see registry_client.h.
//
// Every call goes through open(): it sends the request on the pooled
// connection for the URL's origin (keep-alive), adds our Authorization only
// towards the registry's own origin, answers one 401 by authenticating
// (Basic, or a Bearer token fetched from the challenge's realm and cached
// per scope) and retrying, and follows up to kMaxRedirects redirects. A
// request whose body streams from a ByteSource is never replayed; blob
// uploads therefore send each chunk (at most kUploadChunk) from memory, so
// that a PATCH or PUT meeting a 401 is answered and sent again.
//
// Error codes: 401/403 kVerifyFailed, 404 kNotFound (nullopt where the
// interface says so), 400 with DIGEST_INVALID kVerifyFailed, other 4xx
// kInvalidArgument (405: kUnsupported), 429 and 5xx kUnavailable; transport
// failures as HttpConnection gives them (kUnavailable, kTimeout); bad JSON
// kProtocol. Nothing throws out of the public functions (guarded()).
#include "common/registry/registry_client.h"

#include <algorithm>
#include <limits>
#include <span>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/registry/http_connection.h"
#include "common/registry/registry_auth.h"

namespace deltasync {

namespace {

using namespace registry_detail;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kManifestLimit = 4 << 20;
constexpr uint64_t kSmallBodyLimit = 1 << 20;  // error bodies, tokens, referrers
constexpr uint64_t kUploadChunk = 8 << 20;     // larger blobs go up in PATCH chunks of this
constexpr int kMaxRedirects = 5;
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
constexpr const char* kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.artifact.manifest.v1+json";

bool is_redirect(unsigned status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

std::string pull_scope(const std::string& repository) {
  return "repository:" + repository + ":pull";
}
std::string push_scope(const std::string& repository) {
  return "repository:" + repository + ":pull,push";
}

// "application/json; charset=utf-8" -> "application/json".
std::string bare_media_type(std::string value) {
  value = value.substr(0, value.find(';'));
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

// A sink that drops the first `skip` bytes (a registry that answered a Range
// request with the whole blob).
class SkippingSink final : public ByteSink {
 public:
  SkippingSink(ByteSink& inner, uint64_t skip) : inner_(inner), skip_(skip) {}
  Status write(std::string_view data) override {
    size_t drop = static_cast<size_t>(std::min<uint64_t>(skip_, data.size()));
    skip_ -= drop;
    data.remove_prefix(drop);
    return data.empty() ? ok_status() : inner_.write(data);
  }

 private:
  ByteSink& inner_;
  uint64_t skip_;
};

Result<RegistryDescriptor> parse_descriptor(const Json& item) {
  if (!item.is_object()) return make_error(ErrorCode::kProtocol, "a descriptor is not an object");
  RegistryDescriptor descriptor;
  descriptor.media_type = item.value("mediaType", "");
  DS_ASSIGN_OR_RETURN(descriptor.digest, Digest::parse(item.value("digest", "")));
  descriptor.size = item.value("size", uint64_t{0});
  descriptor.artifact_type = item.value("artifactType", "");
  if (auto it = item.find("annotations"); it != item.end() && it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      if (value.is_string()) descriptor.annotations[key] = value.get<std::string>();
    }
  }
  return descriptor;
}

// One request as the client sees it: a path on the registry (or an absolute
// URL, e.g. an upload Location), the token scope, and the body.
struct Call {
  HttpMethod method = HttpMethod::kGet;
  std::string path;
  std::string scope;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;
  ByteSource* source = nullptr;
  uint64_t source_size = 0;
  std::string what() const { return std::string(method_name(method)) + " " + path; }
};

// A response whose head has been read; the body is still on `connection`.
struct Opened {
  HttpResponse response;
  HttpConnection* connection = nullptr;
  Url url;  // where it finally came from (after redirects)
};

class RegistryClientImpl final : public RegistryClient {
 public:
  RegistryClientImpl(std::string registry, RegistryOptions options,
                     std::shared_ptr<TlsClientContext> tls, CredentialLookup credentials)
      : registry_(std::move(registry)),
        options_(std::move(options)),
        tls_(std::move(tls)),
        credentials_(std::move(credentials)) {
    base_.tls = !options_.insecure;
    base_.authority = registry_;
    settings_.ca_file = options_.ca_file;
    settings_.io_timeout = options_.io_timeout;
  }

  Status ping() override {
    return guarded("ping", [&]() -> Status {
      Call call{HttpMethod::kGet, "/v2/", ""};
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      if (opened.response.status != 200) return std::unexpected(fail(call, opened));
      return with_context(opened.connection->discard_body(kSmallBodyLimit), context(call));
    });
  }

  Result<std::optional<RegistryDescriptor>> head_manifest(const std::string& repository,
                                                          const std::string& reference) override {
    return guarded("manifest HEAD", [&]() -> Result<std::optional<RegistryDescriptor>> {
      Call call{HttpMethod::kHead, manifest_path(repository, reference), pull_scope(repository)};
      call.headers.emplace_back("Accept", kManifestAccept);
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      const HttpResponse& response = opened.response;
      if (response.status == 404) return std::nullopt;
      if (response.status != 200) return std::unexpected(fail(call, opened));
      RegistryDescriptor descriptor;
      descriptor.media_type = bare_media_type(response.header("Content-Type"));
      descriptor.size = response.content_length.value_or(0);
      std::string digest = response.header("Docker-Content-Digest");
      if (digest.empty()) {
        // No digest header: the body tells.
        DS_ASSIGN_OR_RETURN(auto manifest, get_manifest(repository, reference));
        if (!manifest) return std::nullopt;
        descriptor.digest = manifest->digest;
        descriptor.size = manifest->body.size();
        descriptor.media_type = manifest->media_type;
        return descriptor;
      }
      auto parsed = Digest::parse(digest);
      if (!parsed) return std::unexpected(protocol_error(call, "Docker-Content-Digest " + digest));
      descriptor.digest = *parsed;
      return descriptor;
    });
  }

  Result<std::optional<RegistryManifest>> get_manifest(const std::string& repository,
                                                       const std::string& reference) override {
    return guarded("manifest GET", [&]() -> Result<std::optional<RegistryManifest>> {
      Call call{HttpMethod::kGet, manifest_path(repository, reference), pull_scope(repository)};
      call.headers.emplace_back("Accept", kManifestAccept);
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      if (opened.response.status == 404) {
        DS_RETURN_IF_ERROR(opened.connection->discard_body(kSmallBodyLimit));
        return std::nullopt;
      }
      if (opened.response.status != 200) return std::unexpected(fail(call, opened));
      RegistryManifest manifest;
      DS_ASSIGN_OR_RETURN(
          manifest.body,
          with_context(opened.connection->read_body_string(kManifestLimit), context(call)));
      manifest.digest = Digest::of(manifest.body);
      if (reference.starts_with("sha256:") && manifest.digest.str() != reference) {
        return make_error(ErrorCode::kVerifyFailed,
                          context(call) + ": the manifest hashes to " + manifest.digest.str());
      }
      manifest.media_type = bare_media_type(opened.response.header("Content-Type"));
      if (manifest.media_type.empty() || manifest.media_type == "application/json" ||
          manifest.media_type == "text/plain") {
        Json doc = Json::parse(manifest.body, nullptr, false);
        manifest.media_type =
            doc.is_object() && doc.contains("mediaType") && doc["mediaType"].is_string()
                ? doc["mediaType"].get<std::string>()
                : manifest.media_type;
      }
      return manifest;
    });
  }

  Result<Digest> put_manifest(const std::string& repository, const std::string& reference,
                              const std::string& media_type, const std::string& body) override {
    return guarded("manifest PUT", [&]() -> Result<Digest> {
      Digest digest = Digest::of(body);
      Call call{HttpMethod::kPut, manifest_path(repository, reference), push_scope(repository)};
      if (reference.starts_with("sha256:") && digest.str() != reference) {
        return make_error(ErrorCode::kInvalidArgument,
                          context(call) + ": the manifest hashes to " + digest.str());
      }
      call.headers.emplace_back("Content-Type", media_type);
      call.body = body;
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      if (opened.response.status != 201 && opened.response.status != 200) {
        return std::unexpected(fail(call, opened));
      }
      DS_RETURN_IF_ERROR(opened.connection->discard_body(kSmallBodyLimit));
      DS_RETURN_IF_ERROR(check_digest_header(call, opened.response, digest));
      return digest;
    });
  }

  Result<std::optional<uint64_t>> blob_size(const std::string& repository,
                                            const Digest& digest) override {
    return guarded("blob HEAD",
                   [&] { return head_blob(repository, digest, pull_scope(repository)); });
  }

  Status fetch_blob(const std::string& repository, const Digest& digest, uint64_t offset,
                    ByteSink& sink) override {
    return guarded("blob GET", [&]() -> Status {
      Call call{HttpMethod::kGet, blob_path(repository, digest), pull_scope(repository)};
      if (offset > 0) call.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      const HttpResponse& response = opened.response;
      if (response.status == 200) {
        SkippingSink skipping(sink, offset);
        return with_context(opened.connection->read_body(skipping, kNoLimit), context(call));
      }
      if (response.status == 206) {
        std::string range = response.header("Content-Range");
        if (!range.starts_with("bytes " + std::to_string(offset) + "-")) {
          opened.connection->close();
          return std::unexpected(protocol_error(call, "a part starting elsewhere (" + range + ")"));
        }
        return with_context(opened.connection->read_body(sink, kNoLimit), context(call));
      }
      if (response.status == 416) {
        // Nothing left when the offset is the size ("bytes */SIZE"). The
        // body is not read: distribution 2.8 declares the blob's length
        // there but sends a one-line message, and would leave us waiting.
        std::string range = response.header("Content-Range");
        opened.connection->close();
        if (range == "bytes */" + std::to_string(offset)) return ok_status();
        return make_error(ErrorCode::kInvalidArgument,
                          context(call) + ": offset " + std::to_string(offset) +
                              " is beyond the blob's end (" + range + ")");
      }
      return std::unexpected(fail(call, opened));
    });
  }

  Result<std::string> get_blob(const std::string& repository, const Digest& digest,
                               size_t limit) override {
    return guarded("blob GET", [&]() -> Result<std::string> {
      Call call{HttpMethod::kGet, blob_path(repository, digest), pull_scope(repository)};
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      if (opened.response.status != 200) return std::unexpected(fail(call, opened));
      DS_ASSIGN_OR_RETURN(std::string body,
                          with_context(opened.connection->read_body_string(limit), context(call)));
      Digest got = Digest::of(body);
      if (got != digest) {
        return make_error(ErrorCode::kVerifyFailed, context(call) + ": the " +
                                                        std::to_string(body.size()) +
                                                        " bytes sent hash to " + got.str());
      }
      return body;
    });
  }

  Result<bool> push_blob(const std::string& repository, const Digest& digest, uint64_t size,
                         ByteSource& content) override {
    return guarded("blob upload", [&]() -> Result<bool> {
      const std::string scope = push_scope(repository);
      DS_ASSIGN_OR_RETURN(auto existing, head_blob(repository, digest, scope));
      if (existing) return false;
      Call start{HttpMethod::kPost, "/v2/" + repository + "/blobs/uploads/", scope};
      DS_ASSIGN_OR_RETURN(Opened opened, open(start));
      if (opened.response.status != 202) return std::unexpected(fail(start, opened));
      DS_ASSIGN_OR_RETURN(Url location, next_location(start, opened));

      // Each request's body is read into memory first (at most one chunk),
      // so open() can replay it: after a 401 (a token that expired while
      // the previous chunk went up, or one the registry no longer honours)
      // and on a fresh connection when a kept-alive one was closed.
      std::string chunk;
      auto next_chunk = [&](uint64_t offset, uint64_t n) -> Status {
        chunk.resize(static_cast<size_t>(n));
        return read_exact(content, std::span<char>(chunk.data(), chunk.size()),
                          "blob " + digest.str() + " at offset " + std::to_string(offset));
      };
      if (size > kUploadChunk) {
        for (uint64_t offset = 0; offset < size;) {
          uint64_t n = std::min(kUploadChunk, size - offset);
          Call patch{HttpMethod::kPatch, location.str(), scope};
          patch.headers = {
              {"Content-Type", "application/octet-stream"},
              {"Content-Range", std::to_string(offset) + "-" + std::to_string(offset + n - 1)}};
          DS_RETURN_IF_ERROR(next_chunk(offset, n));
          patch.body = chunk;
          DS_ASSIGN_OR_RETURN(Opened answer, open(patch));
          if (answer.response.status != 202) return std::unexpected(fail(patch, answer));
          // The registry says how much of the upload it holds ("0-LAST").
          std::string held = answer.response.header("Range");
          std::string expected = "0-" + std::to_string(offset + n - 1);
          if (!held.empty() && held != expected && held != "bytes=" + expected) {
            answer.connection->close();
            return std::unexpected(protocol_error(
                patch, "upload state: the registry holds " + held + ", not " + expected));
          }
          DS_ASSIGN_OR_RETURN(location, next_location(patch, answer));
          offset += n;
        }
      }
      std::string target = location.str();
      target += (target.find('?') == std::string::npos ? "?" : "&");
      target += "digest=" + url_encode(digest.str());
      Call put{HttpMethod::kPut, target, scope};
      put.headers.emplace_back("Content-Type", "application/octet-stream");
      if (size <= kUploadChunk) {
        DS_RETURN_IF_ERROR(next_chunk(0, size));
        put.body = chunk;
      }
      DS_ASSIGN_OR_RETURN(Opened done, open(put));
      if (done.response.status != 201) return std::unexpected(fail(put, done));
      DS_RETURN_IF_ERROR(done.connection->discard_body(kSmallBodyLimit));
      DS_RETURN_IF_ERROR(check_digest_header(put, done.response, digest));
      return true;
    });
  }

  Result<std::optional<std::vector<RegistryDescriptor>>> referrers(
      const std::string& repository, const Digest& subject,
      const std::string& artifact_type) override {
    using Answer = std::optional<std::vector<RegistryDescriptor>>;
    return guarded("referrers", [&]() -> Result<Answer> {
      Call call{HttpMethod::kGet, "/v2/" + repository + "/referrers/" + subject.str(),
                pull_scope(repository)};
      if (!artifact_type.empty()) call.path += "?artifactType=" + url_encode(artifact_type);
      call.headers.emplace_back("Accept", media_type::kOciIndex);
      DS_ASSIGN_OR_RETURN(Opened opened, open(call));
      unsigned status = opened.response.status;
      // distribution 2.8 and other registries without the API answer 404
      // (an unknown route) or 405.
      if (status == 404 || status == 405) {
        DS_RETURN_IF_ERROR(opened.connection->discard_body(kSmallBodyLimit));
        return Answer{};
      }
      if (status != 200) return std::unexpected(fail(call, opened));
      bool filtered =
          opened.response.header("OCI-Filters-Applied").find("artifactType") != std::string::npos;
      DS_ASSIGN_OR_RETURN(
          std::string body,
          with_context(opened.connection->read_body_string(kManifestLimit), context(call)));
      Json index = Json::parse(body);
      std::vector<RegistryDescriptor> found;
      if (auto it = index.find("manifests"); it != index.end() && it->is_array()) {
        for (const auto& item : *it) {
          DS_ASSIGN_OR_RETURN(RegistryDescriptor descriptor,
                              with_context(parse_descriptor(item), context(call)));
          if (!filtered && !artifact_type.empty() && descriptor.artifact_type != artifact_type) {
            continue;
          }
          found.push_back(std::move(descriptor));
        }
      }
      return Answer{std::move(found)};
    });
  }

  const RegistryTraffic& traffic() const override {
    traffic_.bytes_received = counters_.bytes_received;
    traffic_.bytes_sent = counters_.bytes_sent;
    traffic_.requests = counters_.requests;
    return traffic_;
  }

 private:
  std::string context(const Call& call) const {
    return "registry " + registry_ + ": " + call.what();
  }

  std::string manifest_path(const std::string& repository, const std::string& reference) const {
    return "/v2/" + repository + "/manifests/" + reference;
  }
  std::string blob_path(const std::string& repository, const Digest& digest) const {
    return "/v2/" + repository + "/blobs/" + digest.str();
  }

  template <class F>
  auto guarded(std::string_view what, F&& body) -> decltype(body()) {
    try {
      return body();
    } catch (const Json::exception& e) {
      return make_error(ErrorCode::kProtocol,
                        "registry " + registry_ + " (" + std::string(what) +
                            "): an answer that is not the JSON expected: " + e.what());
    } catch (const std::exception& e) {
      return make_error(ErrorCode::kInternal, "registry client (" + std::string(what) + ", " +
                                                  registry_ + "): " + e.what());
    }
  }

  Error protocol_error(const Call& call, const std::string& what) const {
    return Error(ErrorCode::kProtocol, context(call) + ": unexpected " + what);
  }

  HttpConnection& connection_for(const Url& url) {
    auto& slot = connections_[url.origin()];
    if (!slot) {
      Url origin = url;
      origin.target = "/";
      slot =
          std::make_unique<HttpConnection>(origin, url.tls ? tls_ : nullptr, settings_, counters_);
    }
    return *slot;
  }

  std::optional<std::string> authorization(const std::string& scope) {
    if (auto token = tokens_.get(scope, Clock::now())) return "Bearer " + *token;
    if (basic_ && !credentials_.credentials.username.empty()) {
      return basic_authorization(credentials_.credentials);
    }
    return std::nullopt;
  }

  Result<Opened> open(const Call& call) {
    Url url = base_;
    if (call.path.starts_with("http://") || call.path.starts_with("https://")) {
      DS_ASSIGN_OR_RETURN(url, with_context(parse_url(call.path), context(call)));
    } else {
      url.target = call.path;
    }
    HttpMethod method = call.method;
    bool send_body = true;
    bool authenticated = false;
    for (int hops = 0;;) {
      const bool to_registry = url.origin() == base_.origin();
      HttpRequest request{method, url.target, call.headers};
      if (send_body) {
        request.body = call.body;
        request.body_source = call.source;
        request.body_size = call.source_size;
      }
      if (to_registry) {
        if (auto auth = authorization(call.scope))
          request.headers.emplace_back("Authorization", *auth);
      }
      HttpConnection& connection = connection_for(url);
      bool reused = false;
      auto response = connection.send(request, &reused);
      if (!response && reused && !request.body_source) response = connection.send(request);
      std::string where = context(call) + (to_registry ? "" : " (at " + url.origin() + ")");
      if (!response) return std::unexpected(std::move(response.error()).with_context(where));
      unsigned status = response->status;
      if (status == 401 && to_registry && !authenticated && !request.body_source) {
        authenticated = true;
        DS_RETURN_IF_ERROR(connection.discard_body(kSmallBodyLimit));
        DS_RETURN_IF_ERROR(authenticate(call, *response));
        continue;
      }
      std::string location = response->header("Location");
      if (is_redirect(status) && !location.empty()) {
        DS_RETURN_IF_ERROR(connection.discard_body(kSmallBodyLimit));
        if (++hops > kMaxRedirects) {
          return make_error(ErrorCode::kProtocol,
                            where + ": more than " + std::to_string(kMaxRedirects) + " redirects");
        }
        if (request.body_source && (status == 307 || status == 308)) {
          return make_error(ErrorCode::kUnsupported,
                            where + ": redirected while sending a streamed body");
        }
        DS_ASSIGN_OR_RETURN(url, with_context(resolve_url(url, location), where));
        if (status == 303 || ((status == 301 || status == 302) && method == HttpMethod::kPost)) {
          method = HttpMethod::kGet;
          send_body = false;
        }
        continue;
      }
      return Opened{std::move(*response), &connection, url};
    }
  }

  // Answers a 401: Basic from now on, or a Bearer token for the call's scope.
  Status authenticate(const Call& call, const HttpResponse& response) {
    std::optional<AuthChallenge> bearer, basic;
    std::optional<Error> malformed;
    for (const auto& value : response.all("WWW-Authenticate")) {
      auto challenges = parse_www_authenticate(value);
      if (!challenges) {
        if (!malformed) malformed = std::move(challenges.error());
        continue;
      }
      for (auto& challenge : *challenges) {
        if (challenge.scheme == "bearer" && !bearer) bearer = challenge;
        if (challenge.scheme == "basic" && !basic) basic = challenge;
      }
    }
    // A malformed value matters only when no other one can be answered.
    if (!bearer && !basic && malformed) {
      return std::unexpected(std::move(*malformed).with_context(context(call) + ": 401"));
    }
    const Credentials& credentials = credentials_.credentials;
    if (bearer) return fetch_token(call, *bearer);
    if (basic) {
      if (credentials.username.empty()) return std::unexpected(no_credentials(call));
      basic_ = true;
      return ok_status();
    }
    return make_error(ErrorCode::kVerifyFailed,
                      context(call) + ": 401 without a Basic or Bearer challenge" + login_hint());
  }

  Error no_credentials(const Call& call) const {
    if (credentials_.unusable) return *credentials_.unusable;
    return Error(ErrorCode::kVerifyFailed, context(call) +
                                               ": 401 UNAUTHORIZED: the registry wants "
                                               "credentials and none are configured" +
                                               login_hint());
  }

  Status fetch_token(const Call& call, const AuthChallenge& challenge) {
    std::string realm = challenge.param("realm");
    DS_ASSIGN_OR_RETURN(Url url, with_context(parse_url(realm), context(call) + ": token realm"));
    std::vector<std::string> scopes;
    if (!call.scope.empty()) scopes.push_back(call.scope);
    std::string asked = challenge.param("scope");
    if (!asked.empty() && asked != call.scope) scopes.push_back(asked);
    std::string query;
    auto add = [&](const std::string& key, const std::string& value) {
      query += (query.empty() ? "" : "&") + key + "=" + url_encode(value);
    };
    if (!challenge.param("service").empty()) add("service", challenge.param("service"));
    for (const auto& scope : scopes) add("scope", scope);

    const Credentials& credentials = credentials_.credentials;
    HttpRequest request;
    std::string form;
    if (!credentials.identity_token.empty()) {
      // OAuth2 refresh-token grant, as the Docker CLI does with an identity token.
      form = query;
      form += "&grant_type=refresh_token&client_id=deltasync&refresh_token=" +
              url_encode(credentials.identity_token);
      request.method = HttpMethod::kPost;
      request.target = url.target;
      request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
      request.body = form;
    } else {
      request.target = url.target + (url.target.find('?') == std::string::npos ? "?" : "&") + query;
      if (!credentials.username.empty()) {
        request.headers.emplace_back("Authorization", basic_authorization(credentials));
      }
    }
    std::string where = context(call) + ": token from " + url.origin() + url.target;
    HttpConnection& connection = connection_for(url);
    DS_ASSIGN_OR_RETURN(HttpResponse response, with_context(connection.send(request), where));
    DS_ASSIGN_OR_RETURN(std::string body,
                        with_context(connection.read_body_string(kSmallBodyLimit), where));
    if (response.status != 200) {
      if (credentials.empty() && credentials_.unusable)
        return std::unexpected(*credentials_.unusable);
      return std::unexpected(status_error(where, response.status, response.reason, body));
    }
    DS_ASSIGN_OR_RETURN(BearerToken token,
                        with_context(parse_token_response(body, Clock::now()), where));
    tokens_.put(call.scope, std::move(token));
    return ok_status();
  }

  std::string login_hint() const {
    if (!options_.username.empty()) {
      return " (check the user name and password given for " + registry_ + ")";
    }
    std::string file = docker_config_file(options_.docker_config);
    return " (log in with docker login " + registry_ + ", or give credentials for " + registry_ +
           " in " + (file.empty() ? std::string("~/.docker/config.json") : file) + ")";
  }

  // The error for an unexpected status: reads the (small) body for the
  // registry's {"errors":[{code,message}]}.
  Error fail(const Call& call, Opened& opened) {
    auto body = opened.connection->read_body_string(kSmallBodyLimit);
    if (!body) opened.connection->close();
    return status_error(context(call), opened.response.status, opened.response.reason,
                        body ? *body : std::string());
  }

  Error status_error(const std::string& where, unsigned status, const std::string& reason,
                     const std::string& body) const {
    std::string code, message;
    Json doc = Json::parse(body, nullptr, false);
    if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() &&
        !doc["errors"].empty() && doc["errors"][0].is_object()) {
      const Json& first = doc["errors"][0];
      code = first.value("code", "");
      message = first.value("message", "");
    }
    std::string text = where + ": " + std::to_string(status);
    if (!code.empty()) {
      text += " " + code + (message.empty() ? "" : ": " + message);
    } else {
      text += " " + reason;
      std::string first_line = body.substr(0, std::min(body.find('\n'), size_t{200}));
      bool printable = std::all_of(first_line.begin(), first_line.end(),
                                   [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
      if (!first_line.empty() && printable && first_line != reason) text += ": " + first_line;
    }
    ErrorCode error_code = ErrorCode::kInvalidArgument;
    if (status == 401 || status == 403) {
      error_code = ErrorCode::kVerifyFailed;
      text += login_hint();
    } else if (status == 404) {
      error_code = ErrorCode::kNotFound;
    } else if (status == 405) {
      error_code = ErrorCode::kUnsupported;
    } else if (status == 429 || status >= 500) {
      error_code = ErrorCode::kUnavailable;
    } else if (code == "DIGEST_INVALID") {
      error_code = ErrorCode::kVerifyFailed;
    } else if (status < 400) {
      error_code = ErrorCode::kProtocol;
    }
    return Error(error_code, text);
  }

  Status check_digest_header(const Call& call, const HttpResponse& response,
                             const Digest& expected) const {
    std::string header = response.header("Docker-Content-Digest");
    if (!header.empty() && header != expected.str()) {
      return make_error(ErrorCode::kVerifyFailed, context(call) + ": the registry stored " +
                                                      header + ", not " + expected.str());
    }
    return ok_status();
  }

  Result<Url> next_location(const Call& call, Opened& opened) {
    std::string location = opened.response.header("Location");
    DS_RETURN_IF_ERROR(opened.connection->discard_body(kSmallBodyLimit));
    if (location.empty()) return std::unexpected(protocol_error(call, "answer without a Location"));
    return with_context(resolve_url(opened.url, location), context(call));
  }

  Result<std::optional<uint64_t>> head_blob(const std::string& repository, const Digest& digest,
                                            const std::string& scope) {
    Call call{HttpMethod::kHead, blob_path(repository, digest), scope};
    DS_ASSIGN_OR_RETURN(Opened opened, open(call));
    if (opened.response.status == 404) return std::nullopt;
    if (opened.response.status != 200) return std::unexpected(fail(call, opened));
    DS_RETURN_IF_ERROR(opened.connection->discard_body(0));
    if (!opened.response.content_length) {
      return std::unexpected(protocol_error(call, "answer without a Content-Length"));
    }
    return *opened.response.content_length;
  }

  std::string registry_;
  RegistryOptions options_;
  std::shared_ptr<TlsClientContext> tls_;
  CredentialLookup credentials_;
  Url base_;
  HttpSettings settings_;
  HttpCounters counters_;
  mutable RegistryTraffic traffic_;
  std::map<std::string, std::unique_ptr<HttpConnection>> connections_;
  TokenCache tokens_;
  bool basic_ = false;  // the registry asked for Basic: send it with every request
};

bool valid_repository(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.back() == '/') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '/';
  });
}

}  // namespace

Result<RegistryReference> RegistryReference::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "registry reference '" + std::string(text) + "': " + why +
                          " (expected REGISTRY/REPOSITORY[:TAG][@sha256:...], e.g. "
                          "127.0.0.1:5000/app:2.0.0)");
  };
  RegistryReference ref;
  std::string_view rest = text;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return bad("no registry host");
  ref.registry = std::string(rest.substr(0, slash));
  rest.remove_prefix(slash + 1);
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    if (!Digest::parse(ref.digest)) return bad("'" + ref.digest + "' is not a sha256 digest");
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (ref.tag.empty() || ref.tag.size() > 128) return bad("empty or too long tag");
  }
  if (!valid_repository(rest)) return bad("bad repository name '" + std::string(rest) + "'");
  ref.repository = std::string(rest);
  return ref;
}

std::string RegistryReference::reference() const {
  if (!tag.empty()) return tag;
  if (!digest.empty()) return digest;
  return "latest";
}

std::string RegistryReference::str() const {
  std::string out = registry + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

Result<std::unique_ptr<RegistryClient>> RegistryClient::create(const std::string& registry,
                                                               const RegistryOptions& options) {
  if (registry.empty() || registry.find('/') != std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "registry '" + registry + "': expected host[:port], e.g. 127.0.0.1:5000");
  }
  std::shared_ptr<TlsClientContext> tls;
  if (!options.insecure) {
    DS_ASSIGN_OR_RETURN(tls, make_tls_client_context(options.ca_file));
  }
  CredentialLookup credentials;
  if (!options.username.empty()) {
    credentials.credentials.username = options.username;
    credentials.credentials.password = options.password;
  } else {
    DS_ASSIGN_OR_RETURN(credentials, load_docker_config(options.docker_config, registry));
  }
  return std::unique_ptr<RegistryClient>(
      new RegistryClientImpl(registry, options, std::move(tls), std::move(credentials)));
}

Result<bool> RegistryClient::push_blob(const std::string& repository, std::string_view bytes) {
  MemorySource source(bytes);
  return push_blob(repository, Digest::of(bytes), bytes.size(), source);
}

}  // namespace deltasync
