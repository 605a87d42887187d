// Runs the deltasync-gzip helpers (go_gzip.h). Each compress() is one child
// process: a feeder thread copies the plain bytes into its stdin while the
// calling thread copies its stdout into the sink, so neither pipe can fill
// up and stall the other; the child's exit status and stderr decide success.
// SIGPIPE is blocked in the feeder, so a helper that dies mid-stream shows
// up as EPIPE there and as its exit status here, never as a signal.
#include "common/codec/go_gzip.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "common/crypto/digest.h"
#include "common/io/file.h"

extern char** environ;

namespace deltasync {

namespace {

constexpr std::string_view kHelperPrefix = "deltasync-gzip-";

// The fixed probe whose compressed form names a flavor: text-like runs with
// repeats at many distances plus incompressible stretches, so that the
// match finder, lazy matching and block splitting all show in the output.
std::string probe_input() {
  static constexpr std::string_view kWords[] = {
      "layer ",     "image ",    "config ", "digest ", "sha256 ",    "manifest ",
      "/usr/lib/",  "\n",        "{\"a\":", "0000",    "libc.so.6 ", "ELF ",
      "deltasync ", "tar ",      "\t",      "=\"",     "build ",     "1.2.3 ",
      "x86_64 ",    "#include ", "return ", "if (",    ");\n",       "    "};
  std::string out;
  out.reserve(300 << 10);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  while (out.size() < (256 << 10)) {
    uint64_t r = next();
    if (r % 97 == 0) {
      for (int i = 0; i < 300; ++i) out.push_back(static_cast<char>(next() & 0xff));
    } else if (r % 31 == 0 && out.size() > 5000) {
      size_t from = out.size() - 1 - (next() % 5000);
      size_t length = 3 + next() % 200;
      for (size_t i = 0; i < length; ++i) out.push_back(out[from + i]);
    } else {
      out.append(kWords[r % std::size(kWords)]);
    }
  }
  return out;
}

Result<std::filesystem::path> executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return make_error(ErrorCode::kIo, "/proc/self/exe: " + ec.message());
  return exe.parent_path();
}

std::filesystem::path default_helper_dir() {
  if (const char* dir = std::getenv("DELTASYNC_HELPER_DIR"); dir && *dir) return dir;
  auto exe = executable_dir();
  if (!exe) return "/usr/libexec/deltasync";
  return *exe / ".." / "libexec" / "deltasync";
}

struct Pipe {
  UniqueFd read_end, write_end;
  static Result<Pipe> create(const char* what) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::unexpected(errno_error(errno, what));
    return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
  }
};

class ChildProcess {
 public:
  static Result<ChildProcess> spawn(const std::filesystem::path& program,
                                    const std::vector<std::string>& args, int stdin_fd,
                                    int stdout_fd, int stderr_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
    std::vector<std::string> argv_strings{program.string()};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return std::unexpected(errno_error(rc, program.string()));
    return ChildProcess(pid);
  }
  ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
  }
  // Waits; returns the exit code, or 128 + signal.
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

// Copies `plain` into `fd` and closes it; runs on the feeder thread.
Status feed(ByteSource& plain, UniqueFd fd) {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);
  std::array<char, 1 << 16> buffer;
  while (true) {
    DS_ASSIGN_OR_RETURN(size_t n, plain.read(buffer));
    if (n == 0) return ok_status();
    const char* p = buffer.data();
    while (n > 0) {
      ssize_t written = ::write(fd.get(), p, n);
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) return std::unexpected(errno_error(errno, "writing to deltasync-gzip"));
      p += written;
      n -= static_cast<size_t>(written);
    }
  }
}

std::string read_available(int fd) {
  std::string text;
  std::array<char, 4096> buffer;
  while (text.size() < 4096) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n <= 0) break;
    text.append(buffer.data(), static_cast<size_t>(n));
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

Result<std::string> helper_output(const std::filesystem::path& program, std::string_view input) {
  GoGzip::Helper helper{program, "", ""};
  MemorySource source(input);
  StringSink sink;
  DS_RETURN_IF_ERROR(GoGzip::compress(helper, -1, source, sink));
  return sink.data();
}

// Runs `program -version` and the probe; nullopt when it does not work.
std::optional<GoGzip::Helper> probe_helper(const std::filesystem::path& program,
                                           const std::string& probe) {
  auto out = Pipe::create("deltasync-gzip -version");
  auto null_in = open_for_read("/dev/null");
  if (!out || !null_in) return std::nullopt;
  auto child = ChildProcess::spawn(program, {"-version"}, null_in->get(), out->write_end.get(),
                                   out->write_end.get());
  if (!child) return std::nullopt;
  out->write_end.reset();
  std::string version = read_available(out->read_end.get());
  if (child->wait() != 0 || !version.starts_with("go")) return std::nullopt;
  auto compressed = helper_output(program, probe);
  if (!compressed) return std::nullopt;
  return GoGzip::Helper{program, version, Digest::of(*compressed).hex().substr(0, 16)};
}

}  // namespace

GoGzip GoGzip::in_directory(const std::filesystem::path& dir) {
  GoGzip result;
  std::error_code ec;
  std::vector<std::filesystem::path> candidates;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().starts_with(kHelperPrefix))
      candidates.push_back(entry.path());
  }
  // Newest Go first: that is what recent builders were built with.
  std::sort(candidates.begin(), candidates.end(), std::greater<>());
  const std::string probe = probe_input();
  for (const auto& path : candidates) {
    auto helper = probe_helper(path, probe);
    if (!helper || result.find_flavor(helper->flavor)) continue;
    result.helpers_.push_back(std::move(*helper));
  }
  return result;
}

const GoGzip& GoGzip::installed() {
  static const GoGzip instance = in_directory(default_helper_dir());
  return instance;
}

const GoGzip::Helper* GoGzip::find_flavor(std::string_view flavor) const {
  for (const auto& h : helpers_) {
    if (h.flavor == flavor) return &h;
  }
  return nullptr;
}

std::string GoGzip::describe() const {
  if (helpers_.empty()) return "none";
  std::string out;
  for (const auto& h : helpers_) {
    if (!out.empty()) out += ", ";
    out += h.go_version;
  }
  return out;
}

Status GoGzip::compress(const Helper& helper, int level, ByteSource& plain, ByteSink& out) {
  const std::string what = "deltasync-gzip (" + helper.path.string() + ")";
  DS_ASSIGN_OR_RETURN(Pipe in, Pipe::create("deltasync-gzip stdin"));
  DS_ASSIGN_OR_RETURN(Pipe output, Pipe::create("deltasync-gzip stdout"));
  DS_ASSIGN_OR_RETURN(Pipe errors, Pipe::create("deltasync-gzip stderr"));
  DS_ASSIGN_OR_RETURN(
      ChildProcess child,
      ChildProcess::spawn(helper.path, {"-level", std::to_string(level)}, in.read_end.get(),
                          output.write_end.get(), errors.write_end.get()));
  in.read_end.reset();
  output.write_end.reset();
  errors.write_end.reset();

  Status fed = ok_status();
  std::thread feeder([&] { fed = feed(plain, std::move(in.write_end)); });
  Status drained = ok_status();
  std::array<char, 1 << 16> buffer;
  while (true) {
    ssize_t n = ::read(output.read_end.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      drained = std::unexpected(errno_error(errno, "reading from " + what));
      break;
    }
    if (n == 0) break;
    if (auto written = out.write(std::string_view(buffer.data(), static_cast<size_t>(n)));
        !written) {
      drained = written;
      break;
    }
  }
  // On a sink error the helper must stop too: closing its stdout makes its
  // next write fail, and the feeder then sees EPIPE.
  output.read_end.reset();
  feeder.join();
  std::string stderr_text = read_available(errors.read_end.get());
  int exit_code = child.wait();
  if (!drained) return drained;
  if (!fed) return std::unexpected(std::move(fed).error().with_context(what));
  if (exit_code != 0) {
    return make_error(ErrorCode::kIo, what + " exited with status " + std::to_string(exit_code) +
                                          (stderr_text.empty() ? "" : ": " + stderr_text));
  }
  return ok_status();
}

}  // namespace deltasync
