// Stand-in for deltarecvd inside deploy/deltarecvd.service's sandbox, run by
// a real systemd in tests/deploy/sandbox_test.sh.
//
//   sandbox_probe engine              a fake container engine (Type=notify):
//       listens on /run/docker.sock, /run/podman/podman.sock and (a socket
//       the service must NOT reach) /run/containerd/containerd.sock, then
//       reports ready; answers each connection with the engine's name.
//   sandbox_probe check REPORT_DIR    the service's ExecStart: tries what
//       deltarecvd needs (engine sockets, store, config) and what it must
//       not be able to do (other sockets in /run, writing outside the store
//       or to its own config), writes one "name: result" line per attempt to
//       REPORT_DIR/report.txt, then tells systemd it is ready through
//       common/system/service_notify and stays up until stopped.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/system/service_notify.h"

namespace {

int unix_socket(const std::string& path, bool listen_on_it) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
  int rc = listen_on_it ? ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa))
                        : ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  if (rc == 0 && listen_on_it) rc = ::listen(fd, 16);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

int run_engine() {
  const std::vector<std::pair<std::string, std::string>> sockets = {
      {"/run/docker.sock", "docker"},
      {"/run/podman/podman.sock", "podman"},
      {"/run/containerd/containerd.sock", "containerd"},
  };
  std::vector<std::thread> threads;
  for (const auto& [path, name] : sockets) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::filesystem::remove(path);
    int fd = unix_socket(path, true);
    if (fd < 0) {
      std::fprintf(stderr, "engine: %s: %s\n", path.c_str(), std::strerror(-fd));
      return 1;
    }
    ::chmod(path.c_str(), 0660);  // as docker.socket: root:docker 0660
    threads.emplace_back([fd, reply = name] {
      for (;;) {
        int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        (void)!::write(client, reply.data(), reply.size());
        ::close(client);
      }
    });
  }
  deltasync::notify_ready("fake engine listening");
  for (auto& t : threads) t.join();
  return 0;
}

std::string try_connect(const std::string& path) {
  int fd = unix_socket(path, false);
  if (fd < 0) return std::string("error ") + std::strerror(-fd);
  // A socket that waits for the client to speak first (systemd's, D-Bus)
  // must not hang the probe: give up reading after a second.
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buf[64] = {};
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  return "ok " + std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string try_create(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return std::string("error ") + std::strerror(errno);
  ::close(fd);
  ::unlink(path.c_str());
  return "ok";
}

std::string try_read(const std::string& path) {
  std::ifstream in(path);
  std::string first;
  if (!in || !std::getline(in, first)) return "error unreadable";
  return "ok";
}

int run_check(const std::filesystem::path& report_dir) {
  std::ofstream report(report_dir / "report.txt.tmp");
  auto line = [&](const std::string& name, const std::string& result) {
    report << name << ": " << result << "\n";
  };
  auto watchdog = deltasync::watchdog_interval();
  line("watchdog-usec", watchdog ? std::to_string(watchdog->count()) : "none");
  line("uid", std::to_string(::getuid()));
  for (const char* path :
       {"/run/docker.sock", "/var/run/docker.sock", "/run/podman/podman.sock",
        "/run/containerd/containerd.sock", "/run/systemd/private", "/run/dbus/system_bus_socket"}) {
    line(std::string("connect ") + path, try_connect(path));
  }
  for (const char* path : {"/var/lib/deltarecvd/probe", "/tmp/probe", "/var/tmp/probe",
                           "/etc/deltasync/probe", "/run/probe", "/usr/probe", "/var/lib/probe"}) {
    line(std::string("create ") + path, try_create(path));
  }
  line("read /etc/deltasync/deltarecvd.conf", try_read("/etc/deltasync/deltarecvd.conf"));
  report.close();
  std::filesystem::rename(report_dir / "report.txt.tmp", report_dir / "report.txt");

  deltasync::notify_ready("sandbox probe ready");
  deltasync::notify_watchdog();
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "engine") return run_engine();
  if (argc == 3 && std::string(argv[1]) == "check") return run_check(argv[2]);
  std::fprintf(stderr, "usage: sandbox_probe engine | sandbox_probe check REPORT_DIR\n");
  return 2;
}
