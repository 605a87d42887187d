#include "tests/support/tar_roundtrip.h"

#include <fcntl.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "common/io/file.h"
#include "common/tar/tar_metadata.h"

namespace deltasync::testing {

Result<RoundTrip> round_trip_tar(ByteSource& input, const std::filesystem::path& scratch) {
  RoundTrip result;
  HashingSource hashed_input(input);
  StringSink metadata;
  auto payload_path = scratch / "payloads.bin";
  int fd = ::open(payload_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(errno_error(errno, "open " + payload_path.string()));
  FdSink payload_file(UniqueFd(fd), payload_path.string());
  TeeCountSink payload_counter(payload_file);
  TarMetadataWriter writer(metadata, &payload_counter);
  DS_RETURN_IF_ERROR(split_tar(hashed_input, writer, "test archive"));
  DS_RETURN_IF_ERROR(writer.finish());
  DS_RETURN_IF_ERROR(payload_file.finish());
  result.input_digest = hashed_input.finish();
  result.input_bytes = hashed_input.bytes();
  result.metadata_bytes = metadata.data().size();
  result.payload_bytes = payload_counter.count();
  result.entries = writer.entry_count();

  DS_ASSIGN_OR_RETURN(auto payloads, open_file_source(payload_path));
  MemorySource metadata_source(metadata.data());
  StreamPayloadProvider provider(*payloads);
  HashingSink output;
  DS_RETURN_IF_ERROR(reassemble_tar(metadata_source, provider, output));
  result.output_digest = output.digest();
  result.output_bytes = output.bytes();
  std::array<char, 1> extra{};
  DS_ASSIGN_OR_RETURN(size_t left, payloads->read(extra));
  if (left != 0) return make_error(ErrorCode::kInternal, "payload stream has bytes left over");
  return result;
}

Result<RoundTrip> round_trip_tar_file(const std::filesystem::path& tar,
                                      const std::filesystem::path& scratch) {
  DS_ASSIGN_OR_RETURN(auto source, open_file_source(tar));
  return round_trip_tar(*source, scratch);
}

int run_shell(const std::string& command) {
  int rc = std::system(command.c_str());
  if (rc == -1) return -1;
  return WEXITSTATUS(rc);
}

std::string shell_output(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  ::pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace deltasync::testing
