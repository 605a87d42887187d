// The registry client (common/registry/registry_client.h) against a real
// registry: Debian's docker-registry (distribution 2.8) started per test by
// TestRegistry, with TLS, htpasswd Basic auth or the token proxy where a test
// asks. Blob uploads (monolithic and chunked), HEAD, Range fetches and their
// resume after a cut, digests checked on what a registry serves (its storage
// damaged on disk, so the real registry lies), manifests by tag and digest,
// 404s, 401s without or with wrong credentials, the Bearer dance, TLS with a
// wrong CA. Redirects come from a stub server in front (distribution's
// filesystem storage never redirects): hops to other hosts, relative
// Locations, our Authorization kept from other hosts, a loop.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <span>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "common/registry/registry_client.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/stub_http_server.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_registry.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr uint64_t kChunk = 8 << 20;  // the client's upload chunk (registry_client.cpp)
const std::string kRepo = "team/app";

std::unique_ptr<RegistryClient> make_client(const std::string& host,
                                            const RegistryOptions& options) {
  auto client = RegistryClient::create(host, options);
  EXPECT_TRUE(client) << client.error().message();
  return client ? std::move(*client) : nullptr;
}

std::unique_ptr<RegistryClient> client_for(const TestRegistry& registry) {
  return make_client(registry.host(), registry.client_options());
}

// Options with no credentials at all (a config.json that does not exist).
RegistryOptions anonymous(const TestRegistry& registry) {
  RegistryOptions options = registry.client_options();
  options.docker_config = "/nonexistent/deltasync-test/config.json";
  return options;
}

// Where distribution's filesystem driver keeps a blob's bytes.
fs::path blob_data(const TestRegistry& registry, const Digest& digest) {
  return registry.storage_dir() / "docker/registry/v2/blobs/sha256" / digest.hex().substr(0, 2) /
         digest.hex() / "data";
}

// Replaces the first `from` in a stored blob by `to` (same size): the
// registry then serves bytes that do not hash to the digest it names them
// by. (Manifests are blobs there too; they must stay valid JSON, which the
// registry parses before serving them.)
void damage_stored_blob(const TestRegistry& registry, const Digest& digest, const std::string& from,
                        const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  fs::path path = blob_data(registry, digest);
  auto bytes = read_small_file(path, 64 << 20);
  ASSERT_TRUE(bytes) << bytes.error().message();
  size_t at = bytes->find(from);
  ASSERT_NE(at, std::string::npos) << path;
  bytes->replace(at, from.size(), to);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << *bytes;
  ASSERT_TRUE(file.flush());
}

Result<std::string> fetch_all(RegistryClient& client, const std::string& repository,
                              const Digest& digest, uint64_t offset = 0) {
  StringSink sink;
  DS_RETURN_IF_ERROR(client.fetch_blob(repository, digest, offset, sink));
  return std::move(sink.data());
}

// A manifest the registry accepts: an OCI image manifest whose config and
// layer blobs are pushed first.
struct PushedManifest {
  std::string body;
  Digest digest;
};
PushedManifest push_image_manifest(RegistryClient& client, const std::string& repository,
                                   unsigned seed) {
  std::string config = R"({"architecture":"amd64","os":"linux","seed":)" + std::to_string(seed) +
                       R"(,"rootfs":{"type":"layers","diff_ids":[]}})";
  std::string layer = random_bytes(4096, seed);
  EXPECT_TRUE(client.push_blob(repository, config));
  EXPECT_TRUE(client.push_blob(repository, layer));
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", media_type::kOciManifest},
                   {"config",
                    {{"mediaType", media_type::kOciConfig},
                     {"digest", Digest::of(config).str()},
                     {"size", config.size()}}},
                   {"layers", Json::array({{{"mediaType", media_type::kOciLayerGzip},
                                            {"digest", Digest::of(layer).str()},
                                            {"size", layer.size()}}})}};
  PushedManifest out{manifest.dump(), {}};
  out.digest = Digest::of(out.body);
  return out;
}

// ---- blobs -------------------------------------------------------------------

TEST(RegistryClientTest, PushesSmallBlobsInOnePutAndLargeOnesInChunks) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  // Monolithic: HEAD (absent), POST, PUT with the bytes. Exactly one chunk's
  // worth still goes in one PUT.
  for (uint64_t size : {uint64_t{1000}, kChunk}) {
    std::string blob = random_bytes(size, static_cast<unsigned>(size));
    uint64_t before = client->traffic().requests;
    auto pushed = client->push_blob(kRepo, blob);
    ASSERT_TRUE(pushed) << pushed.error().message();
    EXPECT_TRUE(*pushed);
    EXPECT_EQ(client->traffic().requests - before, 3u) << size;
    auto size_there = client->blob_size(kRepo, Digest::of(blob));
    ASSERT_TRUE(size_there) << size_there.error().message();
    EXPECT_EQ(*size_there, std::optional<uint64_t>(size));
    auto back = fetch_all(*client, kRepo, Digest::of(blob));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_TRUE(*back == blob) << size;
  }
  // Chunked: one byte over a chunk is POST, two PATCHes (8 MiB and 1 byte),
  // and a PUT without a body.
  std::string large = random_bytes(kChunk + 1, 7);
  uint64_t before = client->traffic().requests;
  uint64_t sent_before = client->traffic().bytes_sent;
  auto pushed = client->push_blob(kRepo, large);
  ASSERT_TRUE(pushed) << pushed.error().message();
  EXPECT_TRUE(*pushed);
  EXPECT_EQ(client->traffic().requests - before, 5u);
  EXPECT_EQ(client->traffic().bytes_sent - sent_before, large.size());
  auto back = fetch_all(*client, kRepo, Digest::of(large));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(Digest::of(*back), Digest::of(large));
  // There already: one HEAD, nothing uploaded.
  before = client->traffic().requests;
  auto again = client->push_blob(kRepo, large);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(*again);
  EXPECT_EQ(client->traffic().requests - before, 1u);
}

TEST(RegistryClientTest, UploadThatEndsEarlyOrLiesAboutItsDigestStoresNothing) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  std::string blob = random_bytes(5000, 3);
  // The source gives fewer bytes than declared.
  MemorySource short_source(std::string_view(blob).substr(0, 4000));
  auto cut = client->push_blob(kRepo, Digest::of(blob), blob.size(), short_source);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorrupt) << cut.error().message();
  // The bytes do not hash to the digest given: the registry refuses the PUT.
  Digest other = Digest::of("something else");
  MemorySource wrong(blob);
  auto lie = client->push_blob(kRepo, other, blob.size(), wrong);
  ASSERT_FALSE(lie);
  EXPECT_EQ(lie.error().code(), ErrorCode::kVerifyFailed) << lie.error().message();
  EXPECT_NE(lie.error().message().find("registry " + registry->host() + ": PUT"), std::string::npos)
      << lie.error().message();
  EXPECT_NE(lie.error().message().find("DIGEST_INVALID"), std::string::npos)
      << lie.error().message();
  for (const Digest& d : {Digest::of(blob), other}) {
    auto there = client->blob_size(kRepo, d);
    ASSERT_TRUE(there) << there.error().message();
    EXPECT_FALSE(*there) << d.str();
  }
  // The client still works after those failures.
  auto fine = client->push_blob(kRepo, blob);
  ASSERT_TRUE(fine) << fine.error().message();
  EXPECT_TRUE(*fine);
}

TEST(RegistryClientTest, FetchFromAnOffsetReturnsExactlyTheTail) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  std::string blob = random_bytes(300 << 10, 11);
  Digest digest = Digest::of(blob);
  ASSERT_TRUE(client->push_blob(kRepo, blob));
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{65537}, uint64_t{blob.size() - 1},
                          uint64_t{blob.size()}}) {
    uint64_t received = client->traffic().bytes_received;
    auto tail = fetch_all(*client, kRepo, digest, offset);
    ASSERT_TRUE(tail) << offset << ": " << tail.error().message();
    EXPECT_TRUE(*tail == blob.substr(offset)) << offset << ": " << tail->size() << " bytes";
    // The registry sent only the tail (Range honoured), not the whole blob.
    EXPECT_LE(client->traffic().bytes_received - received, blob.size() - offset + 512) << offset;
  }
  auto beyond = fetch_all(*client, kRepo, digest, blob.size() + 10);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code(), ErrorCode::kInvalidArgument) << beyond.error().message();
  EXPECT_NE(beyond.error().message().find("beyond the blob's end"), std::string::npos)
      << beyond.error().message();
}

TEST(RegistryClientTest, RangeIgnoredOrAnsweredWronglyByAServer) {
  // Answers distribution never gives: a server that ignores Range (200 with
  // the whole blob), and one whose 206 starts elsewhere than asked.
  std::string blob = random_bytes(100000, 18);
  Digest digest = Digest::of(blob);
  const std::string path = "/v2/" + kRepo + "/blobs/" + digest.str();
  StubHttpServer ignores([&](const StubRequest& r) -> StubResponse {
    if (r.target != path) return {404, {}, ""};
    return {200, {{"Content-Type", "application/octet-stream"}}, blob};
  });
  StubHttpServer shifted([&](const StubRequest& r) -> StubResponse {
    if (r.target != path) return {404, {}, ""};
    return {
        206, {{"Content-Range", "bytes 0-99/" + std::to_string(blob.size())}}, blob.substr(0, 100)};
  });
  RegistryOptions options;
  options.insecure = true;
  options.docker_config = "/nonexistent/deltasync-test/config.json";
  options.io_timeout = std::chrono::seconds(20);
  auto whole = make_client(ignores.host(), options);
  ASSERT_TRUE(whole);
  auto tail = fetch_all(*whole, kRepo, digest, 60000);
  ASSERT_TRUE(tail) << tail.error().message();
  EXPECT_TRUE(*tail == blob.substr(60000)) << tail->size();
  EXPECT_EQ(ignores.requests().at(0).header("Range"), "bytes=60000-");
  auto wrong = make_client(shifted.host(), options);
  ASSERT_TRUE(wrong);
  auto refused = fetch_all(*wrong, kRepo, digest, 60000);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(refused.error().message().find("a part starting elsewhere (bytes 0-99/100000)"),
            std::string::npos)
      << refused.error().message();
}

TEST(RegistryClientTest, CutDownloadKeepsWhatArrivedAndResumesFromThere) {
  auto registry = TestRegistry::start();
  auto direct = client_for(*registry);
  ASSERT_TRUE(direct);
  std::string blob = random_bytes(1 << 20, 12);
  Digest digest = Digest::of(blob);
  ASSERT_TRUE(direct->push_blob(kRepo, blob));
  // Every connection through the proxy is cut after 300 KiB towards the client.
  auto proxy = FaultProxy::start(
      registry->registry_port(),
      {FaultMode::kCut, 300 << 10, std::chrono::milliseconds(0), FaultDirection::kServerToClient});
  ASSERT_TRUE(proxy);
  auto client = make_client("127.0.0.1:" + std::to_string(proxy->port()), anonymous(*registry));
  ASSERT_TRUE(client);
  StringSink sink;
  int attempts = 0;
  while (attempts < 10) {
    ++attempts;
    uint64_t had = sink.data().size();
    auto got = client->fetch_blob(kRepo, digest, had, sink);
    if (got) break;
    EXPECT_EQ(got.error().code(), ErrorCode::kUnavailable) << got.error().message();
    EXPECT_NE(got.error().message().find("GET /v2/" + kRepo + "/blobs/" + digest.str()),
              std::string::npos)
        << got.error().message();
    EXPECT_GT(sink.data().size(), had) << "attempt " << attempts << " brought nothing";
  }
  EXPECT_TRUE(proxy->fault_fired());
  EXPECT_GE(attempts, 4);  // 1 MiB in pieces of under 300 KiB
  EXPECT_EQ(sink.data().size(), blob.size());
  EXPECT_EQ(Digest::of(sink.data()), digest);
}

TEST(RegistryClientTest, BlobSizeIsTheHeadAndAbsentBlobsAreNamed) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  std::string blob = random_bytes(12345, 13);
  ASSERT_TRUE(client->push_blob(kRepo, blob));
  auto size = client->blob_size(kRepo, Digest::of(blob));
  ASSERT_TRUE(size) << size.error().message();
  EXPECT_EQ(*size, std::optional<uint64_t>(12345));
  Digest missing = Digest::of("never pushed");
  auto absent = client->blob_size(kRepo, missing);
  ASSERT_TRUE(absent) << absent.error().message();
  EXPECT_FALSE(*absent);
  // In another repository the blob is not there either (no cross-mount).
  auto elsewhere = client->blob_size("other/repo", Digest::of(blob));
  ASSERT_TRUE(elsewhere) << elsewhere.error().message();
  EXPECT_FALSE(*elsewhere);
  // GETs of what is not there: kNotFound naming the registry and the blob.
  auto small = client->get_blob(kRepo, missing, 1 << 20);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code(), ErrorCode::kNotFound);
  auto whole = fetch_all(*client, kRepo, missing);
  ASSERT_FALSE(whole);
  EXPECT_EQ(whole.error().code(), ErrorCode::kNotFound);
  for (const auto* error : {&small.error(), &whole.error()}) {
    EXPECT_NE(error->message().find("registry " + registry->host() + ": GET /v2/" + kRepo +
                                    "/blobs/" + missing.str() + ": 404"),
              std::string::npos)
        << error->message();
    EXPECT_NE(error->message().find("BLOB_UNKNOWN"), std::string::npos) << error->message();
  }
}

TEST(RegistryClientTest, GetBlobRefusesBytesThatDoNotMatchTheDigest) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  std::string blob = random_bytes(2000, 14);
  Digest digest = Digest::of(blob);
  ASSERT_TRUE(client->push_blob(kRepo, blob));
  auto good = client->get_blob(kRepo, digest, 1 << 20);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_EQ(*good, blob);
  // Larger than the caller's limit: refused before it is all read.
  auto big = client->get_blob(kRepo, digest, 1000);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), ErrorCode::kProtocol) << big.error().message();
  // The registry's storage is damaged: it serves other bytes under the digest.
  damage_stored_blob(*registry, digest, blob.substr(0, 4), "XXXX");
  auto lie = client->get_blob(kRepo, digest, 1 << 20);
  ASSERT_FALSE(lie);
  EXPECT_EQ(lie.error().code(), ErrorCode::kVerifyFailed) << lie.error().message();
  EXPECT_NE(lie.error().message().find("registry " + registry->host() + ": GET /v2/" + kRepo +
                                       "/blobs/" + digest.str()),
            std::string::npos)
      << lie.error().message();
  EXPECT_NE(lie.error().message().find("2000 bytes sent hash to sha256:"), std::string::npos)
      << lie.error().message();
  // fetch_blob does not verify (the caller hashes the whole): it passes them on.
  auto raw = fetch_all(*client, kRepo, digest);
  ASSERT_TRUE(raw) << raw.error().message();
  EXPECT_NE(Digest::of(*raw), digest);
}

// ---- manifests -----------------------------------------------------------------

TEST(RegistryClientTest, ManifestsByTagAndByDigest) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  PushedManifest m = push_image_manifest(*client, kRepo, 1);
  auto stored = client->put_manifest(kRepo, "v1", media_type::kOciManifest, m.body);
  ASSERT_TRUE(stored) << stored.error().message();
  EXPECT_EQ(*stored, m.digest);

  for (const std::string& reference : {std::string("v1"), m.digest.str()}) {
    auto head = client->head_manifest(kRepo, reference);
    ASSERT_TRUE(head) << head.error().message();
    ASSERT_TRUE(*head) << reference;
    EXPECT_EQ((*head)->digest, m.digest) << reference;
    EXPECT_EQ((*head)->size, m.body.size()) << reference;
    EXPECT_EQ((*head)->media_type, media_type::kOciManifest) << reference;
    auto got = client->get_manifest(kRepo, reference);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_TRUE(*got) << reference;
    EXPECT_EQ((*got)->body, m.body) << reference;  // byte for byte
    EXPECT_EQ((*got)->digest, m.digest);
    EXPECT_EQ((*got)->media_type, media_type::kOciManifest);
  }

  // By digest, and an index naming it under another tag.
  PushedManifest second = push_image_manifest(*client, kRepo, 2);
  auto by_digest =
      client->put_manifest(kRepo, second.digest.str(), media_type::kOciManifest, second.body);
  ASSERT_TRUE(by_digest) << by_digest.error().message();
  EXPECT_EQ(*by_digest, second.digest);
  Json index = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciIndex},
      {"manifests", Json::array({{{"mediaType", media_type::kOciManifest},
                                  {"digest", second.digest.str()},
                                  {"size", second.body.size()},
                                  {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}})}};
  ASSERT_TRUE(client->put_manifest(kRepo, "multi", media_type::kOciIndex, index.dump()));
  auto got_index = client->get_manifest(kRepo, "multi");
  ASSERT_TRUE(got_index && *got_index);
  EXPECT_EQ((*got_index)->media_type, media_type::kOciIndex);
  EXPECT_EQ((*got_index)->body, index.dump());

  // A tag moves: v1 now names the second manifest.
  ASSERT_TRUE(client->put_manifest(kRepo, "v1", media_type::kOciManifest, second.body));
  auto moved = client->head_manifest(kRepo, "v1");
  ASSERT_TRUE(moved && *moved);
  EXPECT_EQ((*moved)->digest, second.digest);

  // A digest reference that the body does not hash to is refused here.
  uint64_t before = client->traffic().requests;
  auto mismatch =
      client->put_manifest(kRepo, m.digest.str(), media_type::kOciManifest, second.body);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client->traffic().requests, before);
}

TEST(RegistryClientTest, AbsentManifestsAreNulloptAndBadOnesAreRefused) {
  auto registry = TestRegistry::start();
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  PushedManifest m = push_image_manifest(*client, kRepo, 3);
  ASSERT_TRUE(client->put_manifest(kRepo, "v1", media_type::kOciManifest, m.body));
  for (auto [repo, reference] :
       {std::pair{kRepo, std::string("nope")}, std::pair{kRepo, Digest::of("nothing").str()},
        std::pair{std::string("no/such/repo"), std::string("v1")}}) {
    auto head = client->head_manifest(repo, reference);
    ASSERT_TRUE(head) << head.error().message();
    EXPECT_FALSE(*head) << repo << ":" << reference;
    auto got = client->get_manifest(repo, reference);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_FALSE(*got) << repo << ":" << reference;
  }
  // A manifest whose blobs the registry lacks: refused by the registry, named.
  std::string dangling = R"({"schemaVersion":2,"mediaType":")" +
                         std::string(media_type::kOciManifest) + R"(","config":{"mediaType":")" +
                         media_type::kOciConfig + R"(","digest":")" + Digest::of("x").str() +
                         R"(","size":1},"layers":[]})";
  auto refused = client->put_manifest(kRepo, "dangling", media_type::kOciManifest, dangling);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument) << refused.error().message();
  EXPECT_NE(refused.error().message().find("PUT /v2/" + kRepo + "/manifests/dangling: 400"),
            std::string::npos)
      << refused.error().message();
  // The stored manifest damaged on disk: a GET by digest refuses it, by tag
  // it cannot be checked (the tag names no digest), HEAD reports the digest.
  damage_stored_blob(*registry, m.digest, "\"size\":4096", "\"size\":4097");
  auto by_digest = client->get_manifest(kRepo, m.digest.str());
  ASSERT_FALSE(by_digest);
  EXPECT_EQ(by_digest.error().code(), ErrorCode::kVerifyFailed) << by_digest.error().message();
  EXPECT_NE(by_digest.error().message().find("the manifest hashes to"), std::string::npos)
      << by_digest.error().message();
}

// ---- authentication ---------------------------------------------------------------

TEST(RegistryClientTest, BasicAuthWithoutOrWithWrongCredentialsSaysWhatToDo) {
  auto registry = TestRegistry::start({.basic_auth = true});
  auto client = client_for(*registry);  // config.json with the right credentials
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->ping()) << client->ping().error().message();
  std::string blob = random_bytes(100, 15);
  auto pushed = client->push_blob(kRepo, blob);
  ASSERT_TRUE(pushed) << pushed.error().message();

  RegistryOptions options = anonymous(*registry);
  auto nobody = make_client(registry->host(), options);
  ASSERT_TRUE(nobody);
  auto ping = nobody->ping();
  auto get = nobody->get_blob(kRepo, Digest::of(blob), 1000);
  ASSERT_FALSE(ping);
  ASSERT_FALSE(get);
  for (const Error& error : {ping.error(), get.error()}) {
    EXPECT_EQ(error.code(), ErrorCode::kVerifyFailed);
    const std::string& message = error.message();
    EXPECT_NE(message.find("registry " + registry->host() + ": "), std::string::npos) << message;
    EXPECT_NE(message.find("none are configured"), std::string::npos) << message;
    EXPECT_NE(message.find("docker login " + registry->host()), std::string::npos) << message;
    EXPECT_NE(message.find(options.docker_config), std::string::npos) << message;
  }

  options.username = registry->username();
  options.password = "wrong";
  auto wrong = make_client(registry->host(), options);
  ASSERT_TRUE(wrong);
  auto refused = wrong->ping();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kVerifyFailed);
  EXPECT_NE(refused.error().message().find("401"), std::string::npos) << refused.error().message();
  EXPECT_NE(refused.error().message().find("check the user name and password given for " +
                                           registry->host()),
            std::string::npos)
      << refused.error().message();
}

TEST(RegistryClientTest, TokenAuthFetchesATokenPerScopeAndReusesIt) {
  auto registry = TestRegistry::start({.token_auth = true});
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->ping()) << client->ping().error().message();
  std::string blob = random_bytes(3000, 16);
  auto pushed = client->push_blob(kRepo, blob);
  ASSERT_TRUE(pushed) << pushed.error().message();
  EXPECT_TRUE(*pushed);
  auto got = client->get_blob(kRepo, Digest::of(blob), 1 << 20);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, blob);
  // The pull scope's token is cached: one more GET is one request (and
  // reading the proxy's counter is another), no 401 and no /token.
  uint64_t before = registry->proxy_requests();
  ASSERT_TRUE(client->get_blob(kRepo, Digest::of(blob), 1 << 20));
  EXPECT_EQ(registry->proxy_requests() - before, 2u);
  uint64_t client_before = client->traffic().requests;
  ASSERT_TRUE(client->blob_size(kRepo, Digest::of(blob)));
  EXPECT_EQ(client->traffic().requests - client_before, 1u);
  // Another repository is another scope: 401, token, retry.
  client_before = client->traffic().requests;
  auto other = client->blob_size("other/repo", Digest::of(blob));
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_FALSE(*other);
  EXPECT_EQ(client->traffic().requests - client_before, 3u);

  // Without credentials the token endpoint refuses: named, with what to do.
  RegistryOptions options = anonymous(*registry);
  auto nobody = make_client(registry->host(), options);
  ASSERT_TRUE(nobody);
  auto refused = nobody->get_blob(kRepo, Digest::of(blob), 1 << 20);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kVerifyFailed);
  const std::string& message = refused.error().message();
  EXPECT_NE(message.find("registry " + registry->host() + ": GET /v2/" + kRepo + "/blobs/"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("token from http://" + registry->host() + "/token"), std::string::npos)
      << message;
  EXPECT_NE(message.find("401"), std::string::npos) << message;
  EXPECT_NE(message.find("docker login " + registry->host()), std::string::npos) << message;
}

// A source that pauses at the start of every upload chunk, as a slow disk
// or a slow encoder feeding a long upload would.
class PausingSource final : public ByteSource {
 public:
  PausingSource(std::string_view data, std::chrono::milliseconds pause)
      : inner_(data), pause_(pause) {}
  Result<size_t> read(std::span<char> buffer) override {
    if (offset_ % kChunk == 0 && paused_at_ != offset_) {
      paused_at_ = offset_;
      std::this_thread::sleep_for(pause_);
    }
    DS_ASSIGN_OR_RETURN(size_t got, inner_.read(buffer));
    offset_ += got;
    return got;
  }

 private:
  MemorySource inner_;
  std::chrono::milliseconds pause_;
  uint64_t offset_ = 0;
  uint64_t paused_at_ = ~uint64_t{0};
};

TEST(RegistryClientTest, UploadOutlivingItsTokenAuthenticatesAgain) {
  // Tokens die after 2 s (though they claim 300): the token fetched for the
  // POST is dead by the time each chunk is ready, so every PATCH and the
  // PUT meet a 401 and must be sent again with a new token.
  auto registry = TestRegistry::start({.token_auth = true, .token_ttl_seconds = 2});
  auto client = client_for(*registry);
  ASSERT_TRUE(client);
  for (uint64_t size : {uint64_t{5000}, kChunk + 100}) {
    std::string blob = random_bytes(size, static_cast<unsigned>(size % 1000));
    PausingSource slow(blob, std::chrono::milliseconds(2500));
    auto pushed = client->push_blob(kRepo, Digest::of(blob), blob.size(), slow);
    ASSERT_TRUE(pushed) << size << ": " << pushed.error().message();
    EXPECT_TRUE(*pushed);
    auto back = client->get_blob(kRepo, Digest::of(blob), 16 << 20);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->size(), blob.size());
  }
}

// ---- TLS ---------------------------------------------------------------------------

TEST(RegistryClientTest, TlsNeedsTheRegistrysCa) {
  auto registry = TestRegistry::start({.tls = true});
  auto client = client_for(*registry);  // with the registry's CA
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->ping()) << client->ping().error().message();

  auto dir = TempDir::create(default_temp_parent(), "registry-client-ca-");
  ASSERT_TRUE(dir);
  CommandResult made = run_command({MAKE_CERTS_SCRIPT, (dir->path() / "pki").string(),
                                    "--receiver-name", "localhost", "--receiver-ip", "127.0.0.1"});
  ASSERT_TRUE(made.ok()) << made.error_output;
  RegistryOptions other_ca = registry->client_options();
  other_ca.ca_file = (dir->path() / "pki/ca.pem").string();
  RegistryOptions system_only = registry->client_options();
  system_only.ca_file.clear();
  for (const RegistryOptions& options : {other_ca, system_only}) {
    auto stranger = make_client(registry->host(), options);
    ASSERT_TRUE(stranger);
    auto refused = stranger->ping();
    ASSERT_FALSE(refused) << options.ca_file;
    EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
    const std::string& message = refused.error().message();
    EXPECT_NE(message.find("registry " + registry->host() + ": GET /v2/: TLS handshake"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("certificate"), std::string::npos) << message;
    EXPECT_NE(message.find("trust the registry's CA"), std::string::npos) << message;
  }
  // Plain HTTP towards a TLS registry fails too (and does not hang).
  RegistryOptions plain = registry->client_options();
  plain.insecure = true;
  auto wrong_scheme = make_client(registry->host(), plain);
  ASSERT_TRUE(wrong_scheme);
  auto mismatch = wrong_scheme->ping();
  ASSERT_FALSE(mismatch);
  // A CA file that is not there is refused when the client is made.
  RegistryOptions missing = registry->client_options();
  missing.ca_file = (dir->path() / "no-such-ca.pem").string();
  auto none = RegistryClient::create(registry->host(), missing);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(none.error().message().find(missing.ca_file), std::string::npos)
      << none.error().message();
}

// ---- redirects -----------------------------------------------------------------------

TEST(RegistryClientTest, RedirectsAreFollowedWithoutOurCredentialsElsewhere) {
  // The real registry holds the blob; `front` (Basic auth, as a registry)
  // sends blob requests on a relative hop, then to `storage` (another
  // origin, as blob storage), which sends them on to the registry.
  auto registry = TestRegistry::start();
  auto direct = client_for(*registry);
  ASSERT_TRUE(direct);
  std::string blob = random_bytes(200 << 10, 17);
  Digest digest = Digest::of(blob);
  ASSERT_TRUE(direct->push_blob(kRepo, blob));
  std::string upstream = "http://" + registry->host();
  StubHttpServer storage([&](const StubRequest& r) {
    return StubResponse{307, {{"Location", upstream + r.target.substr(std::string("/s").size())}}};
  });
  std::string storage_url = "http://" + storage.host() + "/s";
  StubHttpServer front([&](const StubRequest& r) -> StubResponse {
    if (r.header("Authorization") != "Basic " + std::string("dXNlcjpwYXNz"))  // user:pass
      return {401, {{"WWW-Authenticate", "Basic realm=\"front\""}}, ""};
    if (r.target == "/v2/") return {200, {{"Content-Type", "application/json"}}, "{}"};
    if (r.target.starts_with("/v2/loop/")) return {302, {{"Location", r.target}}, ""};
    if (r.target.starts_with("/v2/" + kRepo + "/blobs/hop/v2/"))
      return {302, {{"Location", storage_url + r.target.substr(r.target.find("/hop") + 4)}}, ""};
    if (r.target.starts_with("/v2/")) return {307, {{"Location", "hop" + r.target}}, ""};
    return {404, {}, ""};
  });
  RegistryOptions options = anonymous(*registry);
  options.username = "user";
  options.password = "pass";
  auto client = make_client(front.host(), options);
  ASSERT_TRUE(client);
  auto got = client->get_blob(kRepo, digest, 1 << 20);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(*got == blob);
  auto tail = fetch_all(*client, kRepo, digest, 150000);  // Range goes along
  ASSERT_TRUE(tail) << tail.error().message();
  EXPECT_TRUE(*tail == blob.substr(150000));
  auto size = client->blob_size(kRepo, digest);  // HEAD too
  ASSERT_TRUE(size) << size.error().message();
  EXPECT_EQ(*size, std::optional<uint64_t>(blob.size()));

  // The relative hop stayed on the registry's origin: with credentials.
  size_t hops = 0;
  for (const auto& r : front.requests()) {
    if (r.target.find("/blobs/hop/") == std::string::npos) continue;
    ++hops;
    EXPECT_TRUE(r.has_header("Authorization")) << r.target;
  }
  EXPECT_EQ(hops, 3u);
  // Blob storage never saw them, but it saw the Range.
  auto at_storage = storage.requests();
  ASSERT_EQ(at_storage.size(), 3u);
  for (const auto& r : at_storage) EXPECT_FALSE(r.has_header("Authorization")) << r.target;
  EXPECT_EQ(at_storage[1].header("Range"), "bytes=150000-");
  EXPECT_EQ(at_storage[2].method, "HEAD");

  // A loop ends after 5 hops, named.
  auto loop = client->get_blob("loop/repo", digest, 1 << 20);
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(loop.error().message().find("more than 5 redirects"), std::string::npos)
      << loop.error().message();
}

}  // namespace
}  // namespace deltasync::testing
