// Bundle signatures (common/crypto/signing.h) with real keys: certificates
// made by deploy/make-certs.sh, ed25519 keys by the openssl CLI. What the
// trust accepts and what it refuses, and that each refusal names the signer.
// No engine; bundle_apply_test checks the same through deltarecvd apply.
#include <filesystem>

#include <gtest/gtest.h>

#include "common/crypto/signing.h"
#include "common/io/file.h"
#include "tests/support/test_engines.h"

namespace deltasync::testing {
namespace {

namespace fs = std::filesystem;

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::create(default_temp_parent(), "signing-test-");
    ASSERT_TRUE(dir);
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    for (const auto& [name, senders] : std::vector<std::pair<std::string, std::string>>{
             {"pki", "build-1"}, {"other", "build-1"}}) {
      auto made = run_command({MAKE_CERTS_SCRIPT, (path() / name).string(), "--sender-name",
                               senders, "--sender-name", "Build-2"});
      ASSERT_TRUE(made.ok()) << made.error_output;
    }
  }
  fs::path path() const { return dir_->path(); }
  std::string file(const std::string& rel) const { return (path() / rel).string(); }
  std::unique_ptr<BundleSigner> cert_signer(const std::string& pki, const std::string& name) {
    auto signer = BundleSigner::from_certificate(file(pki + "/sender-" + name + ".pem"),
                                                 file(pki + "/sender-" + name + ".key"));
    EXPECT_TRUE(signer) << signer.error().message();
    return signer ? std::move(*signer) : nullptr;
  }
  std::unique_ptr<TempDir> dir_;
  const Digest digest_ = Digest::of("the bundle before its trailer");
};

TEST_F(SigningTest, CertificatesFromTheCaWithAListedNameAreTrusted) {
  auto signer = cert_signer("pki", "build-1");
  ASSERT_TRUE(signer);
  auto signature = signer->sign(digest_);
  ASSERT_TRUE(signature);
  EXPECT_EQ(signature->scheme, BundleSignature::Scheme::kX509);
  SignatureTrust trust;
  ASSERT_TRUE(trust.add_ca_file(file("pki/ca.pem")));
  trust.set_allowed_names({"BUILD-1"});  // names compare without case, as TLS does
  auto who = trust.verify(*signature, digest_);
  ASSERT_TRUE(who) << who.error().message();
  EXPECT_NE(who->find("CN=build-1"), std::string::npos);
  // Another digest (another bundle): refused.
  auto other = trust.verify(*signature, Digest::of("another bundle"));
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("does not verify"), std::string::npos);
}

TEST_F(SigningTest, EachUntrustedSignerIsRefusedByName) {
  SignatureTrust trust;
  ASSERT_TRUE(trust.add_ca_file(file("pki/ca.pem")));
  trust.set_allowed_names({"build-1"});
  struct Case {
    std::string what;
    std::unique_ptr<BundleSigner> signer;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"another CA", cert_signer("other", "build-1"), "does not vouch for"});
  cases.push_back({"a name not listed", cert_signer("pki", "Build-2"), "not in allow-client"});
  // The receiver's server certificate is from the same CA but not for
  // client authentication: a site must not take bundles signed with it.
  auto server = BundleSigner::from_certificate(file("pki/receiver.pem"), file("pki/receiver.key"));
  ASSERT_TRUE(server) << server.error().message();
  cases.push_back({"a server certificate", std::move(*server), "does not vouch for"});
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_TRUE(c.signer);
    auto signature = c.signer->sign(digest_);
    ASSERT_TRUE(signature);
    auto result = trust.verify(*signature, digest_);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kVerifyFailed);
    EXPECT_NE(result.error().message().find(c.expect), std::string::npos)
        << result.error().message();
    EXPECT_NE(result.error().message().find("signed by certificate CN="), std::string::npos);
  }
  // No CA configured at all: a certificate signature cannot be checked.
  SignatureTrust keys_only;
  auto signature = cert_signer("pki", "build-1")->sign(digest_);
  auto unchecked = keys_only.verify(*signature, digest_);
  ASSERT_FALSE(unchecked);
  EXPECT_NE(unchecked.error().message().find("no CA is configured"), std::string::npos);
}

TEST_F(SigningTest, Ed25519KeysAndRotation) {
  auto make_key = [&](const std::string& name) {
    auto pair = generate_ed25519_pem();
    EXPECT_TRUE(pair);
    EXPECT_TRUE(write_file_atomically(path() / (name + ".key"), pair->first));
    EXPECT_TRUE(write_file_atomically(path() / (name + ".pub"), pair->second));
  };
  make_key("old");
  make_key("new");
  auto old_signer = BundleSigner::from_ed25519_key(file("old.key"));
  auto new_signer = BundleSigner::from_ed25519_key(file("new.key"));
  ASSERT_TRUE(old_signer && new_signer);
  auto by_old = (*old_signer)->sign(digest_).value();
  auto by_new = (*new_signer)->sign(digest_).value();
  EXPECT_EQ(by_old.scheme, BundleSignature::Scheme::kEd25519);
  EXPECT_EQ(by_old.public_key.size(), 32u);

  SignatureTrust both;
  ASSERT_TRUE(both.add_ed25519_public_key_file(file("old.pub")));
  ASSERT_TRUE(both.add_ed25519_public_key_file(file("new.pub")));
  EXPECT_TRUE(both.verify(by_old, digest_));
  EXPECT_TRUE(both.verify(by_new, digest_));
  SignatureTrust new_only;
  ASSERT_TRUE(new_only.add_ed25519_public_key_file(file("new.pub")));
  EXPECT_TRUE(new_only.verify(by_new, digest_));
  auto dropped = new_only.verify(by_old, digest_);
  ASSERT_FALSE(dropped);
  EXPECT_NE(dropped.error().message().find("not among the trusted keys"), std::string::npos);
  // A flipped bit in the signature.
  BundleSignature flipped = by_new;
  flipped.signature[5] = static_cast<char>(flipped.signature[5] ^ 0x01);
  auto bad = new_only.verify(flipped, digest_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("does not verify"), std::string::npos);
  // A private key where a public one is wanted, and a certificate key given
  // as an ed25519 signing key: clear errors naming the file.
  auto wrong = new_only.add_ed25519_public_key_file(file("pki/ca.pem"));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("pki/ca.pem"), std::string::npos);
  auto not_ed = BundleSigner::from_ed25519_key(file("pki/sender-build-1.key"));
  ASSERT_FALSE(not_ed);
  EXPECT_NE(not_ed.error().message().find("not an ed25519 key"), std::string::npos);
  // Unsigned.
  auto none = both.verify(BundleSignature{}, digest_);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("not signed"), std::string::npos);
}

}  // namespace
}  // namespace deltasync::testing
