// Test support: the private container engines of the end-to-end tests.
//
// CTest starts two private dockerd instances (fixture "engines", see
// scripts/test-engine.sh and tests/CMakeLists.txt) and gives every test that
// requires the fixture their addresses in DELTASYNC_TEST_SENDER_ENGINE and
// DELTASYNC_TEST_RECEIVER_ENGINE. A missing variable FAILS the test (it
// does not skip it): an end-to-end test that silently does nothing would
// hide a broken fixture. Typical use:
//
//   class MyTest : public deltasync::testing::EngineTest {};
//   TEST_F(MyTest, X) { use(sender_engine()); }   // SetUp asserted both are set
//
// or, without the fixture class:
//   std::string engine;
//   ASSERT_TRUE(deltasync::testing::get_sender_engine(&engine));
//
// The docker CLI helpers exist only to prepare fixture images in tests
// (import a tar, build a directory); product code talks to engines only
// through EngineClient. The CLI is $DELTASYNC_DOCKER_CLI, else `docker` on
// PATH; builds use the classic builder (DOCKER_BUILDKIT=0) and --network none.
//
// Thread safety: the functions may be called from any thread; each command
// runs in its own child process.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/util/result.h"

namespace deltasync::testing {

inline constexpr const char* kSenderEngineVar = "DELTASYNC_TEST_SENDER_ENGINE";
inline constexpr const char* kReceiverEngineVar = "DELTASYNC_TEST_RECEIVER_ENGINE";

// Reads engine address variable `var` into *address; failure (unset, empty,
// not unix://) carries a message naming the variable and how to get it set.
::testing::AssertionResult get_engine_from_env(const char* var, std::string* address);
::testing::AssertionResult get_sender_engine(std::string* address);
::testing::AssertionResult get_receiver_engine(std::string* address);

// A test fixture whose SetUp fails the test unless both engines are given.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override;
  const std::string& sender_engine() const { return sender_engine_; }
  const std::string& receiver_engine() const { return receiver_engine_; }

 private:
  std::string sender_engine_;
  std::string receiver_engine_;
};

struct CommandResult {
  int exit_code = -1;        // -1: killed by a signal or could not start
  std::string output;        // standard output
  std::string error_output;  // standard error
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (searched on PATH) with argv, extra environment variables
// added to ours; captures stdout and stderr. Never throws.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env = {});

// The docker CLI used by the helpers below.
std::string docker_cli();

// `docker -H <engine> <args...>` with DOCKER_BUILDKIT=0.
CommandResult run_docker(const std::string& engine, const std::vector<std::string>& args);

// `docker import <tar> <ref>`; returns the image ID ("sha256:..").
Result<std::string> import_image(const std::string& engine, const std::filesystem::path& tar,
                                 const std::string& ref);

// `docker build --network none -t <ref> <dir>` (classic builder, Dockerfile in
// dir); returns the image ID ("sha256:..").
Result<std::string> build_image(const std::string& engine, const std::filesystem::path& dir,
                                const std::string& ref);

// The content identity of `ref` in `engine`: its config digest
// ("sha256:.."), "" if the engine has no such image. On the classic store
// and Podman that is the engine's Id; on Docker's containerd image store
// (whose Id is the manifest digest) it is read from `docker save`, and a
// config digest given as `ref` is looked for among all images.
std::string image_id_of(const std::string& engine, const std::string& ref);
// False for Docker's containerd image store (its IDs are manifest digests).
bool engine_ids_are_config_digests(const std::string& engine);
// DELTASYNC_TEST_EXPECT_SAME_ID=1 (the matrix's containerd-store run, whose
// build has the deltasync-gzip helper of forky's Go): a site on the
// containerd store must end with the build host's own Id, not only the
// content identity.
bool test_expects_same_id();

// `docker rmi -f <ref>`, ignoring "no such image".
Status remove_image_cli(const std::string& engine, const std::string& ref);

}  // namespace deltasync::testing
