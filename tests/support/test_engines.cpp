// Test support: engine addresses from the CTest fixture and docker CLI helpers
// (see test_engines.h). Child processes are started with posix_spawnp and
// their stdout and stderr are read through two pipes.
//
// Thread safety: no shared mutable state; `environ` is only read.
#include "tests/support/test_engines.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/crypto/digest.h"
#include "tests/support/ctr_cli.h"

namespace deltasync::testing {

namespace {

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  size_t start = text.find_first_not_of(" \r\n");
  return start == std::string::npos ? std::string() : text.substr(start);
}

// The last line of standard output (`docker build -q` and `docker import`
// print the ID last).
std::string last_line(const std::string& output) {
  std::string text = trim(output);
  size_t pos = text.rfind('\n');
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

Error command_error(const std::string& what, const CommandResult& result) {
  return Error(ErrorCode::kEngine, what + " failed (exit " + std::to_string(result.exit_code) +
                                       "): " + trim(result.error_output + "\n" + result.output));
}

}  // namespace

::testing::AssertionResult get_engine_from_env(const char* var, std::string* address) {
  const char* value = std::getenv(var);
  if (value == nullptr || *value == '\0') {
    return ::testing::AssertionFailure()
           << var << " is not set: this test needs the private engines of the CTest fixture "
           << "'engines'. Run it through ctest (e.g. `ctest -R engine`), or start engines with "
           << "scripts/test-engine.sh start sender|receiver and export " << kSenderEngineVar << "/"
           << kReceiverEngineVar << "=unix://...";
  }
  std::string text(value);
  if (text.rfind("unix://", 0) != 0 && !is_containerd_engine(text)) {
    return ::testing::AssertionFailure()
           << var << "=" << text << " is not a unix:// or containerd:// address";
  }
  // The fixture's engine may be another kind than the build configured
  // (DELTASYNC_TEST_SITE_ENGINE_KIND): scripts/test-engine.sh keeps the
  // address it started beside the socket.
  if (text.rfind("unix://", 0) == 0) {
    std::filesystem::path beside = std::filesystem::path(text.substr(7)).parent_path() / "address";
    std::ifstream in(beside);
    std::string started;
    if (in && std::getline(in, started) && !started.empty()) text = started;
  }
  *address = std::move(text);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult get_sender_engine(std::string* address) {
  return get_engine_from_env(kSenderEngineVar, address);
}

::testing::AssertionResult get_receiver_engine(std::string* address) {
  return get_engine_from_env(kReceiverEngineVar, address);
}

void EngineTest::SetUp() {
  ASSERT_TRUE(get_sender_engine(&sender_engine_));
  ASSERT_TRUE(get_receiver_engine(&receiver_engine_));
}

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env) {
  CommandResult result;
  if (argv.empty()) {
    result.error_output = "run_command: empty argv";
    return result;
  }
  std::vector<std::string> env_strings;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string item(*entry);
    std::string key = item.substr(0, item.find('='));
    if (!extra_env.contains(key)) env_strings.push_back(std::move(item));
  }
  for (const auto& [key, value] : extra_env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& item : env_strings) envp.push_back(item.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (auto& arg : args) c_argv.push_back(arg.data());
  c_argv.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.error_output = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.error_output = std::string("pipe: ") + std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, c_argv[0], &actions, nullptr, c_argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.error_output = "cannot run " + argv[0] + ": " + std::strerror(rc);
    return result;
  }
  // Drain both pipes until both reach end of file.
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* targets[2] = {&result.output, &result.error_output};
  int open_count = 2;
  char buffer[65536];
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        targets[i]->append(buffer, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string docker_cli() {
  const char* value = std::getenv("DELTASYNC_DOCKER_CLI");
  return value != nullptr && *value != '\0' ? std::string(value) : std::string("docker");
}

CommandResult run_docker(const std::string& engine, const std::vector<std::string>& args) {
  if (is_containerd_engine(engine)) return run_docker_on_containerd(engine, args);
  std::vector<std::string> argv{docker_cli(), "-H", engine};
  argv.insert(argv.end(), args.begin(), args.end());
  // BuildKit where the matrix engine has it (DELTASYNC_TEST_BUILDKIT=1, set
  // by scripts/run-tests.sh for the forky engines), else the classic builder.
  const char* buildkit = std::getenv("DELTASYNC_TEST_BUILDKIT");
  bool use_buildkit = buildkit != nullptr && std::string(buildkit) == "1";
  return run_command(
      argv, {{"DOCKER_BUILDKIT", use_buildkit ? "1" : "0"}, {"DOCKER_CLI_HINTS", "false"}});
}

Result<std::string> import_image(const std::string& engine, const std::filesystem::path& tar,
                                 const std::string& ref) {
  CommandResult result = run_docker(engine, {"import", tar.string(), ref});
  if (!result.ok()) return std::unexpected(command_error("docker import " + ref, result));
  std::string id = last_line(result.output);
  if (id.rfind("sha256:", 0) != 0) {
    return make_error(ErrorCode::kEngine, "docker import " + ref + ": unexpected output: " +
                                              trim(result.output + result.error_output));
  }
  std::string content_id = image_id_of(engine, ref);
  if (content_id.empty())
    return make_error(ErrorCode::kEngine, "docker import " + ref + ": the image is not there");
  return content_id;
}

Result<std::string> build_image(const std::string& engine, const std::filesystem::path& dir,
                                const std::string& ref) {
  CommandResult result =
      run_docker(engine, {"build", "--network", "none", "-q", "-t", ref, dir.string()});
  if (!result.ok()) return std::unexpected(command_error("docker build " + ref, result));
  std::string id = image_id_of(engine, ref);
  if (id.empty()) {
    return make_error(ErrorCode::kEngine, "docker build " + ref + ": no image afterwards: " +
                                              trim(result.output + result.error_output));
  }
  return id;
}

namespace {

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The config digest of `ref` read from `docker save` (manifest.json names
// the config member; its bytes are hashed here), independent of deltasync.
std::string config_digest_from_save(const std::string& engine, const std::string& ref) {
  char dir_template[] = "/var/tmp/ds-save.XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return "";
  std::string dir = dir_template;
  std::string archive = dir + "/image.tar";
  std::string digest;
  if (run_docker(engine, {"save", "-o", archive, ref}).ok()) {
    CommandResult manifest = run_command({"tar", "-xOf", archive, "manifest.json"});
    auto json = nlohmann::json::parse(manifest.output, nullptr, false);
    if (manifest.ok() && json.is_array() && json.size() == 1 && json[0].contains("Config")) {
      std::string member = json[0]["Config"].get<std::string>();
      CommandResult config = run_command({"tar", "-xOf", archive, member});
      if (config.ok()) digest = Digest::of(config.output).str();
    }
  }
  run_command({"rm", "-rf", dir});
  return digest;
}

}  // namespace

bool engine_ids_are_config_digests(const std::string& engine) {
  static std::mutex mutex;
  static std::map<std::string, bool> known;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = known.find(engine); it != known.end()) return it->second;
  CommandResult info = run_docker(engine, {"info", "--format", "{{json .DriverStatus}}"});
  bool classic = info.output.find("io.containerd.snapshotter.v1") == std::string::npos;
  if (info.ok()) known[engine] = classic;
  return classic;
}

std::string image_id_of(const std::string& engine, const std::string& ref) {
  if (is_containerd_engine(engine)) return ctr_image(engine, ref).config;
  CommandResult result = run_docker(engine, {"image", "inspect", "--format", "{{.Id}}", ref});
  if (engine_ids_are_config_digests(engine)) return result.ok() ? trimmed(result.output) : "";
  if (result.ok()) return config_digest_from_save(engine, ref);
  // A config digest is no name on the containerd store: look for it.
  if (ref.rfind("sha256:", 0) != 0) return "";
  CommandResult ids = run_docker(engine, {"images", "-q", "--no-trunc"});
  std::string line;
  for (char c : ids.output + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (!line.empty() && config_digest_from_save(engine, line) == ref) return ref;
    line.clear();
  }
  return "";
}

Status remove_image_cli(const std::string& engine, const std::string& ref) {
  CommandResult result = run_docker(engine, {"rmi", "-f", ref});
  if (result.ok() || result.error_output.find("No such image") != std::string::npos ||
      result.error_output.find("not found") != std::string::npos)
    return ok_status();
  return std::unexpected(command_error("docker rmi " + ref, result));
}

bool test_expects_same_id() {
  const char* value = std::getenv("DELTASYNC_TEST_EXPECT_SAME_ID");
  return value && std::string_view(value) == "1";
}

}  // namespace deltasync::testing
