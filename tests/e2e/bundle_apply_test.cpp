// Offline bundles between two real engines: the sender's engine holds
// app:1 and app:2, the receiver's only app:1 (moved there with docker
// save/load). `deltasend bundle` + `deltarecvd apply` must leave the
// receiver with app:2 under the sender's image ID and diff_ids. A
// truncated bundle, a bit flip, and a bundle for a base the site does not
// have must each be refused with a clear message and leave the receiver's
// engine exactly as it was.
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/io/file.h"
#include "proto/deltasync.pb.h"
#include "tests/support/ctr_cli.h"
#include "tests/support/test_engines.h"
#include "tests/support/test_files.h"
#include "tests/support/test_images.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

std::string image_list(const std::string& engine) {
  auto r = run_docker(engine, {"images", "-a", "-q", "--no-trunc"});
  EXPECT_TRUE(r.ok()) << r.error_output;
  return r.output;
}

nlohmann::json inspect(const std::string& engine, const std::string& ref) {
  auto r = run_docker(engine, {"image", "inspect", ref});
  if (!r.ok()) return nullptr;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  return j.is_array() && !j.empty() ? j[0] : nlohmann::json(nullptr);
}

class BundleApplyTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    if (HasFatalFailure()) return;
    auto dir = TempDir::create(default_temp_parent(), "bundle-e2e-");
    ASSERT_TRUE(dir);
    temp_.emplace(std::move(*dir));
    tag_ = "ds-bundle-e2e-" + std::to_string(::getpid());
    ASSERT_TRUE(ensure_base_image(sender_engine()));
    ASSERT_TRUE(ensure_base_image(receiver_engine()));
    // The build host's signing key (an ed25519 pair by openssl), which the
    // site trusts; the signature tests below use other signers too.
    signing_key_ = temp_->path() / "signing.key";
    trusted_key_ = temp_->path() / "signing.pub";
    make_ed25519(signing_key_, trusted_key_);
    build_pair();
  }

  static void make_ed25519(const fs::path& key, const fs::path& pub) {
    auto made = run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out", key.string()});
    ASSERT_TRUE(made.ok()) << made.error_output;
    auto pubout =
        run_command({"openssl", "pkey", "-in", key.string(), "-pubout", "-out", pub.string()});
    ASSERT_TRUE(pubout.ok()) << pubout.error_output;
  }

  void build_pair() {
    fs::path v1 = temp_->path() / "v1";
    for (int i = 0; i < 5; ++i)
      write_file(v1 / "app" / ("large" + std::to_string(i) + ".bin"), random_bytes(3 << 20, i));
    for (int i = 0; i < 200; ++i)
      write_file(v1 / "app" / "src" / ("f" + std::to_string(i) + ".js"),
                 "export const v = " + std::to_string(i) + ";\n");
    write_file(v1 / "app" / "small.txt", "small one\n");
    write_file(v1 / "app" / "gone.txt", "removed in 2\n");
    write_file(v1 / "Dockerfile",
               "FROM deltasync-base:busybox\nCOPY app /app\nRUN ln -s large1.bin /app/link && "
               "mkdir /app/tmp && echo x > /app/tmp/x\n");
    fs::path v2 = temp_->path() / "v2";
    fs::copy(v1, v2, fs::copy_options::recursive);
    std::string large = random_bytes(3 << 20, 2);
    for (size_t off : {size_t{1000}, size_t{1} << 20, size_t{2} << 20})
      large.replace(off, 5, "EDIT!");
    write_file(v2 / "app" / "large2.bin", large);
    write_file(v2 / "app" / "small.txt", "small one, changed\n");
    write_file(v2 / "app" / "src" / "f7.js", "export const v = 'seven';\n");
    write_file(v2 / "app" / "copy-of-large0.bin",
               random_bytes(3 << 20, 0));  // same content as large0
    fs::remove(v2 / "app" / "gone.txt");
    write_file(v2 / "Dockerfile",
               "FROM deltasync-base:busybox\nCOPY app /app\nRUN ln -s large1.bin /app/link && "
               "mkdir /app/tmp && echo x > /app/tmp/x\n"
               "RUN rm -rf /app/tmp\n");
    auto id1 = build_image(sender_engine(), v1, tag_ + ":1");
    ASSERT_TRUE(id1) << id1.error().message();
    auto id2 = build_image(sender_engine(), v2, tag_ + ":2");
    ASSERT_TRUE(id2) << id2.error().message();
    // The site gets 1 only, the way a site would: docker save | docker load.
    fs::path archive = temp_->path() / "v1.tar";
    auto saved = run_docker(sender_engine(), {"save", "-o", archive.string(), tag_ + ":1"});
    ASSERT_TRUE(saved.ok()) << saved.error_output;
    auto loaded = run_docker(receiver_engine(), {"load", "-i", archive.string()});
    ASSERT_TRUE(loaded.ok()) << loaded.error_output;
  }

  CommandResult bundle(const std::string& image, const std::string& base, const fs::path& out,
                       const std::string& effort = "default") {
    return run_command({DELTASEND_BINARY, "--engine", sender_engine(), "bundle", image, "--base",
                        base, "-o", out.string(), "--effort", effort, "--json", "--signing-key",
                        signing_key_.string()});
  }
  // deltarecvd apply trusting the build host's key (and `extra` options).
  CommandResult apply(const fs::path& bundle_file, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{DELTARECVD_BINARY,    "--config",        "/dev/null",
                                  "--engine",           receiver_engine(), "--trusted-key",
                                  trusted_key_.string()};
    argv.push_back("apply");
    argv.push_back(bundle_file.string());
    // After the subcommand: deltarecvd takes its global options there too.
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  }

  void TearDown() override {
    for (const auto& engine : {sender_engine(), receiver_engine()}) {
      if (engine.empty()) continue;
      for (const char* v : {":1", ":2"}) remove_image_cli(engine, tag_ + v);
    }
  }

  std::optional<TempDir> temp_;
  std::string tag_;
  fs::path signing_key_, trusted_key_;
};

TEST_F(BundleApplyTest, AppliedImageIsBitIdentical) {
  for (const char* effort : {"fast", "default", "max"}) {
    SCOPED_TRACE(effort);
    remove_image_cli(receiver_engine(), tag_ + ":2");
    fs::path file = temp_->path() / (std::string("app-2-") + effort + ".dsb");
    auto made = bundle(tag_ + ":2", tag_ + ":1", file, effort);
    ASSERT_TRUE(made.ok()) << made.error_output;
    auto summary = nlohmann::json::parse(made.output, nullptr, false);
    ASSERT_FALSE(summary.is_discarded()) << made.output;
    uint64_t bundle_bytes = fs::file_size(file);
    EXPECT_EQ(summary["bytes"].get<uint64_t>(), bundle_bytes);
    // 15 MiB of new layer data; the changes are a few edits and a copy.
    EXPECT_LT(bundle_bytes, 64u * 1024) << "bundle is " << bundle_bytes << " bytes";
    EXPECT_GT(summary["missing_layer_bytes"].get<uint64_t>(), 15u << 20);

    auto applied = apply(file);
    ASSERT_TRUE(applied.ok()) << applied.output << applied.error_output;
    auto sent = inspect(sender_engine(), tag_ + ":2");
    auto got = inspect(receiver_engine(), tag_ + ":2");
    ASSERT_FALSE(got.is_null()) << "the receiver has no " << tag_ << ":2";
    // The content identity: config digest (the Id on the classic store) and
    // every diff_id; on the containerd store the Id is our manifest's digest.
    EXPECT_EQ(image_id_of(receiver_engine(), tag_ + ":2"),
              image_id_of(sender_engine(), tag_ + ":2"));
    EXPECT_EQ(got["RootFS"]["Layers"], sent["RootFS"]["Layers"]);
    if (is_containerd_engine(receiver_engine())) {
      EXPECT_EQ(ctr_unpack_problem(receiver_engine(), tag_ + ":2"), "");
    }
    if (engine_ids_are_config_digests(sender_engine()) &&
        engine_ids_are_config_digests(receiver_engine())) {
      EXPECT_EQ(got["Id"], sent["Id"]);
    }
    // The distribution identity: on the containerd store, BuildKit's blobs
    // rebuilt with forky's Go give the build host's own Id.
    if (test_expects_same_id()) {
      EXPECT_TRUE(summary["same_id_on_containerd_store"].get<bool>()) << made.output;
      EXPECT_EQ(summary["build_host_image_id"], sent["Id"]);
      EXPECT_EQ(got["Id"], sent["Id"]) << applied.output;
    }
  }
}

TEST_F(BundleApplyTest, DamagedBundlesAreRefusedAndLoadNothing) {
  fs::path good = temp_->path() / "good.dsb";
  auto made = bundle(tag_ + ":2", tag_ + ":1", good);
  ASSERT_TRUE(made.ok()) << made.error_output;
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 200u);
  std::string before = image_list(receiver_engine());

  // Truncated at several points, and a bit flipped at several points.
  std::vector<std::pair<std::string, std::string>> cases;
  for (size_t cut : {bytes.size() / 3, bytes.size() - 1, size_t{10}})
    cases.emplace_back("cut", bytes.substr(0, cut));
  for (size_t at : {size_t{20}, bytes.size() / 2, bytes.size() - 40}) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    cases.emplace_back("flip", flipped);
  }
  int n = 0;
  for (const auto& [kind, content] : cases) {
    fs::path bad = temp_->path() / ("bad" + std::to_string(n++) + ".dsb");
    write_file(bad, content);
    auto result = apply(bad);
    EXPECT_FALSE(result.ok()) << kind << " case " << n << " was accepted";
    EXPECT_NE(result.error_output.find("bundle"), std::string::npos) << result.error_output;
    EXPECT_TRUE(result.error_output.find("damaged") != std::string::npos ||
                result.error_output.find("not a deltasync bundle") != std::string::npos)
        << result.error_output;
  }
  EXPECT_EQ(image_list(receiver_engine()), before);
  EXPECT_TRUE(inspect(receiver_engine(), tag_ + ":2").is_null());
}

TEST_F(BundleApplyTest, WrongBaseIsRefusedNamingTheMissingLayers) {
  // A bundle against a base the site does not hold: built on a different base.
  fs::path other = temp_->path() / "other";
  write_file(other / "unrelated.txt", random_bytes(1000, 77));
  write_file(other / "Dockerfile", "FROM deltasync-base:busybox\nCOPY unrelated.txt /u.txt\n");
  std::string other_tag = tag_ + "-other:1";
  auto built = build_image(sender_engine(), other, other_tag);
  ASSERT_TRUE(built) << built.error().message();
  fs::path file = temp_->path() / "wrong-base.dsb";
  auto made = bundle(tag_ + ":2", other_tag, file);
  ASSERT_TRUE(made.ok()) << made.error_output;
  std::string before = image_list(receiver_engine());
  auto result = apply(file);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.error_output.find("holds no image with the base layers"), std::string::npos)
      << result.error_output;
  EXPECT_NE(result.error_output.find("missing 1 of 2 layers"), std::string::npos)
      << result.error_output;
  EXPECT_NE(result.error_output.find(other_tag), std::string::npos) << result.error_output;
  EXPECT_EQ(image_list(receiver_engine()), before);
  remove_image_cli(sender_engine(), other_tag);
}

// Who may update a site: a bundle signed by another CA, by a name the
// site's allow-client does not list, with a flipped bit in its signature,
// or changed and re-signed by someone else is refused before anything is
// rebuilt, and the engine is unchanged; an unsigned one needs
// --allow-unsigned; during a key rotation both trusted keys work.
TEST_F(BundleApplyTest, SignaturesDecideWhoMayUpdateTheSite) {
  fs::path pki = temp_->path() / "pki", other_pki = temp_->path() / "other-pki";
  for (const auto& [dir, names] : std::vector<std::pair<fs::path, std::vector<std::string>>>{
           {pki, {"build-1", "build-2"}}, {other_pki, {"build-1"}}}) {
    std::vector<std::string> argv{MAKE_CERTS_SCRIPT, dir.string()};
    for (const auto& name : names) {
      argv.push_back("--sender-name");
      argv.push_back(name);
    }
    auto made = run_command(argv);
    ASSERT_TRUE(made.ok()) << made.error_output;
  }
  auto make = [&](const std::string& name, std::vector<std::string> signing) {
    fs::path file = temp_->path() / (name + ".dsb");
    std::vector<std::string> argv{DELTASEND_BINARY, "--engine", sender_engine(), "bundle",
                                  tag_ + ":2",      "--base",   tag_ + ":1",     "-o",
                                  file.string(),    "-q"};
    argv.insert(argv.end(), signing.begin(), signing.end());
    auto made = run_command(argv);
    EXPECT_TRUE(made.ok()) << made.error_output;
    return file;
  };
  auto cert_of = [&](const fs::path& dir, const std::string& name) {
    return std::vector<std::string>{"--cert", (dir / ("sender-" + name + ".pem")).string(), "--key",
                                    (dir / ("sender-" + name + ".key")).string()};
  };
  const std::vector<std::string> site_ca{"--ca", (pki / "ca.pem").string(), "--allow-client",
                                         "build-1"};
  fs::path good = make("by-build-1", cert_of(pki, "build-1"));
  fs::path other_ca = make("other-ca", cert_of(other_pki, "build-1"));
  fs::path unlisted = make("unlisted", cert_of(pki, "build-2"));
  fs::path unsigned_file = make("unsigned", {"--unsigned"});
  std::string before = image_list(receiver_engine());

  struct Refusal {
    std::string what;
    fs::path file;
    std::string expect;  // in the error
  };
  std::vector<Refusal> refusals{
      {"another CA", other_ca, "does not vouch for"},
      {"a name allow-client does not list", unlisted, "not in allow-client (build-1)"},
      {"unsigned", unsigned_file, "--allow-unsigned"},
  };
  // A flipped bit in the signature: the checksum still holds (it covers
  // what precedes the trailer), the signature does not.
  {
    std::string bytes = read_small_file(good, 64 << 20).value();
    // The signature's own bytes (not the certificate after them).
    size_t trailer_at = bytes.size();
    wire::BundleFrame trailer;
    for (size_t at = 8; at + 4 <= bytes.size();) {
      uint32_t length = 0;
      for (int i = 0; i < 4; ++i)
        length |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
      trailer_at = at;
      at += 4 + length;
    }
    ASSERT_TRUE(trailer.ParseFromString(bytes.substr(trailer_at + 4)));
    const std::string& signature = trailer.trailer().signature().signature();
    size_t sig_at = bytes.find(signature, trailer_at);
    ASSERT_NE(sig_at, std::string::npos);
    std::string sig_flip = bytes;
    sig_flip[sig_at + 10] = static_cast<char>(sig_flip[sig_at + 10] ^ 0x01);
    fs::path file = temp_->path() / "sig-flip.dsb";
    write_file(file, sig_flip);
    refusals.push_back({"a flipped bit in the signature", file, "does not verify"});
  }
  // Another bundle with the trusted signer's signature moved onto it: its
  // own checksum holds, the signature (over the first one's) does not.
  {
    auto frames_of = [](const std::string& bytes) {
      std::vector<std::string> frames;  // length prefix + body, after the 8-byte magic
      size_t at = 8;
      while (at + 4 <= bytes.size()) {
        uint32_t length = 0;
        for (int i = 0; i < 4; ++i)
          length |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
        frames.push_back(bytes.substr(at, 4 + length));
        at += 4 + length;
      }
      return frames;
    };
    std::string a_bytes = read_small_file(good, 64 << 20).value();
    // Bundles are deterministic: the other one must differ (another effort).
    fs::path other_body = make("fast", {"--effort", "max", "--unsigned"});
    std::string b_bytes = read_small_file(other_body, 64 << 20).value();
    auto a_frames = frames_of(a_bytes), b_frames = frames_of(b_bytes);
    ASSERT_GE(a_frames.size(), 2u);
    wire::BundleFrame a_trailer, b_trailer;
    ASSERT_TRUE(a_trailer.ParseFromString(a_frames.back().substr(4)));
    ASSERT_TRUE(b_trailer.ParseFromString(b_frames.back().substr(4)));
    ASSERT_TRUE(a_trailer.has_trailer() && b_trailer.has_trailer());
    *b_trailer.mutable_trailer()->mutable_signature() = a_trailer.trailer().signature();
    std::string body = b_trailer.SerializeAsString();
    std::string prefix(4, '\0');
    for (int i = 0; i < 4; ++i) prefix[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
    std::string moved = b_bytes.substr(0, b_bytes.size() - b_frames.back().size()) + prefix + body;
    fs::path file = temp_->path() / "moved-signature.dsb";
    write_file(file, moved);
    refusals.push_back({"a trusted signature moved onto another bundle", file, "does not verify"});
  }
  // Changed and re-signed by a signer the site does not trust.
  refusals.push_back({"re-signed by another CA", other_ca, "does not vouch for"});
  for (const auto& r : refusals) {
    SCOPED_TRACE(r.what);
    auto result = apply(r.file, site_ca);
    EXPECT_FALSE(result.ok()) << "accepted";
    EXPECT_NE(result.error_output.find(r.expect), std::string::npos) << result.error_output;
    EXPECT_EQ(image_list(receiver_engine()), before);
  }
  // Tampered without re-signing: the checksum catches it first.
  {
    std::string bytes = read_small_file(good, 64 << 20).value();
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
    fs::path file = temp_->path() / "tampered.dsb";
    write_file(file, bytes);
    auto result = apply(file, site_ca);
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(image_list(receiver_engine()), before);
  }

  // Trusted: the site's CA and a listed name; the JSON says who signed.
  auto applied = apply(good, {"--ca", (pki / "ca.pem").string(), "--allow-client", "build-1"});
  ASSERT_TRUE(applied.ok()) << applied.error_output;
  EXPECT_NE(applied.output.find("signed by certificate CN=build-1"), std::string::npos)
      << applied.output;
  remove_image_cli(receiver_engine(), tag_ + ":2");
  // Unsigned, when the site says so.
  auto allowed = apply(unsigned_file, {"--allow-unsigned"});
  ASSERT_TRUE(allowed.ok()) << allowed.error_output;
  remove_image_cli(receiver_engine(), tag_ + ":2");

  // Key rotation: the site trusts the old and the new key at once.
  fs::path new_key = temp_->path() / "new.key", new_pub = temp_->path() / "new.pub";
  make_ed25519(new_key, new_pub);
  fs::path by_new = make("by-new-key", {"--signing-key", new_key.string()});
  fs::path by_old = make("by-old-key", {"--signing-key", signing_key_.string()});
  for (const auto& file : {by_old, by_new}) {
    SCOPED_TRACE(file.filename().string());
    auto rotated = apply(file, {"--trusted-key", new_pub.string()});
    ASSERT_TRUE(rotated.ok()) << rotated.error_output;
    remove_image_cli(receiver_engine(), tag_ + ":2");
  }
  // ...and once the old key is dropped, its bundles are refused.
  auto dropped =
      run_command({DELTARECVD_BINARY, "--config", "/dev/null", "--engine", receiver_engine(),
                   "--trusted-key", new_pub.string(), "apply", by_old.string()});
  EXPECT_FALSE(dropped.ok());
  EXPECT_NE(dropped.error_output.find("not among the trusted keys"), std::string::npos)
      << dropped.error_output;
}

}  // namespace
}  // namespace deltasync::testing
