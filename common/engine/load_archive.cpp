#include "common/engine/load_archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "common/io/file.h"

namespace deltasync {

Result<std::vector<std::string>> load_archive_through_pipe(
    EngineClient& engine, const std::function<Status(ByteSink&)>& produce) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::unexpected(errno_error(errno, "pipe"));
  Status produced;
  std::thread producer([&] {
    FdSink sink{UniqueFd{fds[1]}, "image archive pipe"};
    BufferedSink buffered(sink, 1 << 20);
    produced = produce(buffered);
    if (produced) produced = buffered.flush();
    // Closing the pipe ends the upload; on error the engine sees a truncated archive.
  });
  FileSource source{UniqueFd{fds[0]}, "image archive pipe"};
  auto loaded = engine.load_image(source);
  // Drain so the producer never blocks on a full pipe after a load error.
  std::vector<char> drain(1 << 16);
  while (true) {
    auto n = source.read(drain);
    if (!n || *n == 0) break;
  }
  producer.join();
  if (!produced) return std::unexpected(produced.error());
  return loaded;
}

}  // namespace deltasync
