// ds-bench-tar: how fast a layer tar goes through split_tar() + reassemble_tar().
//
// Every layer deltasync sends is split into a metadata stream (headers,
// padding, trailer) and a payload stream (file contents), and every layer it
// receives is rebuilt by interleaving them again, so this path bounds the
// throughput of a transfer before any delta work. The tool streams FILE.tar
// through the splitter (hashing the input), keeps the metadata stream in
// memory, sends the payloads either to a temp file under $TMPDIR or /var/tmp
// (the default) or, with --payload-to-pipe, through a pipe to a reassembler
// thread running concurrently (nothing touches disk), then rebuilds the
// archive into a hashing sink and checks that the digests match.
//
// It prints Markdown tables: the archive (bytes, entries, metadata size raw
// and zstd -3 compressed), one row per run (wall time and MB/s, MB = 10^6
// bytes, of each phase, plus the CPU time each phase used), a baseline of
// reading + SHA-256 alone (the floor any verified copy pays), and the peak RSS.
//
// Usage: ds-bench-tar FILE.tar [--repeat N] [--warmup N] [--payload-to-pipe]
// Exit status: 0 digests match, 1 error, 2 usage, 3 digests differ.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/codec/compression.h"
#include "common/crypto/digest.h"
#include "common/io/file.h"
#include "common/io/stream.h"
#include "common/tar/tar_metadata.h"
#include "common/tar/tar_split.h"

namespace deltasync {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// User + system CPU seconds of the calling thread.
double thread_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(usage.ru_utime) + tv(usage.ru_stime);
}

struct Options {
  std::filesystem::path tar;
  int repeat = 1;
  int warmup = 0;
  bool pipe = false;
};

struct RunResult {
  Digest input_digest;
  Digest output_digest;
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
  uint64_t payload_bytes = 0;
  uint64_t entries = 0;
  double split_seconds = 0;
  double reassemble_seconds = 0;
  double total_seconds = 0;
  double split_cpu = 0;
  double reassemble_cpu = 0;
  std::string metadata;
};

// The metadata stream handed from the splitter to a concurrent reassembler.
// Unbounded (metadata is small: about 1 KiB per entry) so the splitter never
// waits for it; the reassembler blocks only until the next bytes arrive. A
// bounded channel here could deadlock against the payload pipe.
class MetadataChannel {
 public:
  class Sink final : public ByteSink {
   public:
    explicit Sink(MetadataChannel& channel) : channel_(channel) {}
    Status write(std::string_view data) override {
      {
        std::lock_guard lock(channel_.mutex_);
        channel_.data_.append(data);
      }
      channel_.ready_.notify_one();
      return ok_status();
    }
    Status finish() override {
      channel_.close();
      return ok_status();
    }

   private:
    MetadataChannel& channel_;
  };

  class Source final : public ByteSource {
   public:
    explicit Source(MetadataChannel& channel) : channel_(channel) {}
    Result<size_t> read(std::span<char> buffer) override {
      std::unique_lock lock(channel_.mutex_);
      channel_.ready_.wait(lock, [&] { return channel_.closed_ || pos_ < channel_.data_.size(); });
      size_t n = std::min(buffer.size(), channel_.data_.size() - pos_);
      std::memcpy(buffer.data(), channel_.data_.data() + pos_, n);
      pos_ += n;
      return n;
    }

   private:
    MetadataChannel& channel_;
    size_t pos_ = 0;
  };

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }
  // Only once both sides are done.
  std::string take() { return std::move(data_); }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::string data_;
  bool closed_ = false;
};

Status check_payloads_consumed(ByteSource& payloads) {
  std::array<char, 1> extra{};
  DS_ASSIGN_OR_RETURN(size_t left, payloads.read(extra));
  if (left != 0) return make_error(ErrorCode::kInternal, "payload stream has bytes left over");
  return ok_status();
}

// Split to memory + a temp file, then reassemble from them.
Result<RunResult> run_temp_file(const Options& options) {
  RunResult result;
  DS_ASSIGN_OR_RETURN(TempDir scratch, TempDir::create(default_temp_parent(), "ds-bench-tar-"));
  auto payload_path = scratch.path() / "payloads.bin";

  auto start = Clock::now();
  double cpu_start = thread_cpu_seconds();
  {
    DS_ASSIGN_OR_RETURN(auto input, open_file_source(options.tar));
    HashingSource hashed_input(*input);
    StringSink metadata;
    int fd = ::open(payload_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return std::unexpected(errno_error(errno, "create " + payload_path.string()));
    FdSink payload_file(UniqueFd(fd), payload_path.string());
    BufferedSink buffered(payload_file);
    TeeCountSink payloads(buffered);
    TarMetadataWriter writer(metadata, &payloads);
    DS_RETURN_IF_ERROR(split_tar(hashed_input, writer, options.tar.string()));
    DS_RETURN_IF_ERROR(writer.finish());
    DS_RETURN_IF_ERROR(payloads.finish());
    result.input_digest = hashed_input.finish();
    result.input_bytes = hashed_input.bytes();
    result.payload_bytes = payloads.count();
    result.entries = writer.entry_count();
    result.metadata = std::move(metadata.data());
  }
  result.split_seconds = seconds_since(start);
  result.split_cpu = thread_cpu_seconds() - cpu_start;

  auto reassemble_start = Clock::now();
  cpu_start = thread_cpu_seconds();
  {
    DS_ASSIGN_OR_RETURN(auto payloads, open_file_source(payload_path));
    MemorySource metadata(result.metadata);
    StreamPayloadProvider provider(*payloads);
    HashingSink output;
    DS_RETURN_IF_ERROR(reassemble_tar(metadata, provider, output));
    DS_RETURN_IF_ERROR(check_payloads_consumed(*payloads));
    result.output_digest = output.digest();
    result.output_bytes = output.bytes();
  }
  result.reassemble_seconds = seconds_since(reassemble_start);
  result.reassemble_cpu = thread_cpu_seconds() - cpu_start;
  result.total_seconds = seconds_since(start);
  return result;
}

// Split on this thread while a second thread reassembles: metadata through a
// MetadataChannel, payloads through a pipe. Both phases start together, so
// their wall times overlap; their CPU times are the per-phase cost.
Result<RunResult> run_pipe(const Options& options) {
  RunResult result;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::unexpected(errno_error(errno, "pipe"));
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  // Best effort: 1 MiB pipes mean fewer context switches than the 64 KiB default.
  ::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20);

  MetadataChannel channel;
  Status reassemble_status = ok_status();
  auto start = Clock::now();
  std::thread reassembler([&, fd = std::move(read_end)]() mutable {
    double cpu_start = thread_cpu_seconds();
    // Owning the read end here means it closes when this thread stops
    // reading, so a failed reassembly makes the splitter's writes fail with
    // EPIPE instead of blocking forever.
    FileSource payloads(std::move(fd), "payload pipe");
    MetadataChannel::Source metadata(channel);
    StreamPayloadProvider provider(payloads);
    HashingSink output;
    reassemble_status = reassemble_tar(metadata, provider, output);
    if (reassemble_status) reassemble_status = check_payloads_consumed(payloads);
    result.output_digest = output.digest();
    result.output_bytes = output.bytes();
    result.reassemble_seconds = seconds_since(start);
    result.reassemble_cpu = thread_cpu_seconds() - cpu_start;
  });

  double cpu_start = thread_cpu_seconds();
  Status split_status = [&]() -> Status {
    MetadataChannel::Sink metadata(channel);
    FdSink pipe_sink(std::move(write_end), "payload pipe");
    // Whatever happens from here on, close both streams so that the
    // reassembler reaches their end and the join below returns.
    struct CloseOnExit {
      MetadataChannel& channel;
      FdSink& pipe;
      ~CloseOnExit() {
        channel.close();
        (void)pipe.finish();
      }
    } close_on_exit{channel, pipe_sink};
    DS_ASSIGN_OR_RETURN(auto input, open_file_source(options.tar));
    HashingSource hashed_input(*input);
    BufferedSink buffered(pipe_sink);
    TeeCountSink payloads(buffered);
    TarMetadataWriter writer(metadata, &payloads);
    DS_RETURN_IF_ERROR(split_tar(hashed_input, writer, options.tar.string()));
    DS_RETURN_IF_ERROR(writer.finish());
    DS_RETURN_IF_ERROR(payloads.finish());
    result.input_digest = hashed_input.finish();
    result.input_bytes = hashed_input.bytes();
    result.payload_bytes = payloads.count();
    result.entries = writer.entry_count();
    return ok_status();
  }();
  result.split_seconds = seconds_since(start);
  result.split_cpu = thread_cpu_seconds() - cpu_start;
  reassembler.join();
  result.total_seconds = seconds_since(start);

  // When both fail, one usually caused the other (a dead reassembler makes
  // the splitter's writes fail with EPIPE; a failed split truncates the
  // streams), so report both.
  if (!split_status && !reassemble_status) {
    return make_error(split_status.error().code(),
                      "split: " + split_status.error().message() +
                          "; reassemble: " + reassemble_status.error().message());
  }
  if (!split_status) return std::unexpected(std::move(split_status).error().with_context("split"));
  if (!reassemble_status) {
    return std::unexpected(std::move(reassemble_status).error().with_context("reassemble"));
  }
  result.metadata = channel.take();
  return result;
}

// Reading + SHA-256 of the archive alone: what any verified copy costs.
Result<double> baseline_seconds(const std::filesystem::path& tar) {
  auto start = Clock::now();
  DS_ASSIGN_OR_RETURN(auto input, open_file_source(tar));
  HashingSink hasher;
  DS_RETURN_IF_ERROR(copy_all(*input, hasher));
  (void)hasher.digest();
  return seconds_since(start);
}

Result<uint64_t> zstd_size(std::string_view data, int level) {
  CountingSink counter;
  auto sink = make_zstd_sink(counter, level);
  DS_RETURN_IF_ERROR(sink->write(data));
  DS_RETURN_IF_ERROR(sink->finish());
  return counter.count();
}

double mb_per_s(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0;
}

void print_run_row(const std::string& label, const RunResult& r) {
  std::printf("| %s | %.2f | %.0f | %.2f | %.0f | %.2f | %.0f | %.2f | %.2f |\n", label.c_str(),
              r.split_seconds, mb_per_s(r.input_bytes, r.split_seconds), r.reassemble_seconds,
              mb_per_s(r.output_bytes, r.reassemble_seconds), r.total_seconds,
              mb_per_s(r.input_bytes, r.total_seconds), r.split_cpu, r.reassemble_cpu);
}

std::optional<int> parse_count(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

int usage(const char* message) {
  std::fprintf(stderr,
               "ds-bench-tar: %s\n"
               "usage: ds-bench-tar FILE.tar [--repeat N] [--warmup N] [--payload-to-pipe]\n",
               message);
  return 2;
}

int run(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--repeat" || arg == "--warmup") {
      if (i + 1 >= argc) return usage("missing value after --repeat/--warmup");
      auto count = parse_count(argv[++i]);
      if (!count) return usage("--repeat/--warmup take a non-negative integer");
      (arg == "--repeat" ? options.repeat : options.warmup) = *count;
    } else if (arg == "--payload-to-pipe") {
      options.pipe = true;
    } else if (arg == "-h" || arg == "--help") {
      return usage("split + reassemble benchmark");
    } else if (arg.starts_with("-") || !options.tar.empty()) {
      return usage(("unexpected argument '" + std::string(arg) + "'").c_str());
    } else {
      options.tar = arg;
    }
  }
  if (options.tar.empty()) return usage("no tar file given");
  if (options.repeat < 1) return usage("--repeat must be at least 1");

  // glibc raises its mmap threshold after the first large free, so later runs
  // would grow the metadata string through the heap and leave a trail of
  // freed blocks resident; a fixed threshold makes every run comparable.
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // A failed reassembler closes the pipe; report EPIPE rather than dying.
  std::signal(SIGPIPE, SIG_IGN);

  std::string mode = options.pipe
                         ? std::string("payloads through a pipe to a concurrent reassembler")
                         : "payloads via a temp file in " + default_temp_parent().string();
  std::printf("ds-bench-tar %s (%s)\n\n", options.tar.c_str(), mode.c_str());

  std::vector<RunResult> runs;
  std::vector<std::string> labels;
  bool mismatch = false;
  for (int i = 0; i < options.warmup + options.repeat; ++i) {
    // Keep only the last metadata stream, so that peak RSS is that of one run.
    // (Assigning an empty string would keep the capacity: swap it away.)
    if (!runs.empty()) std::string().swap(runs.back().metadata);
    auto r = options.pipe ? run_pipe(options) : run_temp_file(options);
    if (!r) {
      std::fprintf(stderr, "ds-bench-tar: %s\n", r.error().message().c_str());
      return 1;
    }
    if (r->input_digest != r->output_digest || r->input_bytes != r->output_bytes) {
      std::fprintf(stderr,
                   "ds-bench-tar: run %d: output %s (%llu bytes) != input %s (%llu bytes)\n", i + 1,
                   r->output_digest.str().c_str(), static_cast<unsigned long long>(r->output_bytes),
                   r->input_digest.str().c_str(), static_cast<unsigned long long>(r->input_bytes));
      mismatch = true;
    }
    labels.push_back(i < options.warmup ? "warm-up " + std::to_string(i + 1)
                                        : std::to_string(i - options.warmup + 1));
    runs.push_back(std::move(*r));
  }
  auto baseline = baseline_seconds(options.tar);
  if (!baseline) {
    std::fprintf(stderr, "ds-bench-tar: baseline: %s\n", baseline.error().message().c_str());
    return 1;
  }

  const RunResult& last = runs.back();
  auto compressed = zstd_size(last.metadata, 3);
  if (!compressed) {
    std::fprintf(stderr, "ds-bench-tar: zstd: %s\n", compressed.error().message().c_str());
    return 1;
  }
  std::printf("| input bytes | entries | payload bytes | metadata bytes | metadata zstd -3 |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  std::printf("| %llu | %llu | %llu | %zu (%.2f%%) | %llu (%.3f%%) |\n\n",
              static_cast<unsigned long long>(last.input_bytes),
              static_cast<unsigned long long>(last.entries),
              static_cast<unsigned long long>(last.payload_bytes), last.metadata.size(),
              100.0 * static_cast<double>(last.metadata.size()) /
                  static_cast<double>(std::max<uint64_t>(last.input_bytes, 1)),
              static_cast<unsigned long long>(*compressed),
              100.0 * static_cast<double>(*compressed) /
                  static_cast<double>(std::max<uint64_t>(last.input_bytes, 1)));

  std::printf(
      "| run | split s | split MB/s | reassemble s | reassemble MB/s | total s | total MB/s | "
      "split CPU s | reassemble CPU s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < runs.size(); ++i) print_run_row(labels[i], runs[i]);
  std::printf("\nbaseline, read + sha256 only: %.2f s, %.0f MB/s\n", *baseline,
              mb_per_s(last.input_bytes, *baseline));
  if (options.pipe) {
    std::printf("(pipe mode: both phases start together; wall times overlap)\n");
  }

  rusage usage_self{};
  ::getrusage(RUSAGE_SELF, &usage_self);
  std::printf("peak RSS: %.1f MiB\n", static_cast<double>(usage_self.ru_maxrss) / 1024.0);
  std::printf("digest: %s %s\n", last.input_digest.str().c_str(),
              mismatch ? "MISMATCH" : "(output identical in every run)");
  return mismatch ? 3 : 0;
}

}  // namespace
}  // namespace deltasync

int main(int argc, char** argv) {
  return deltasync::run(argc, argv);
}
