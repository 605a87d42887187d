#include "common/util/result.h"

#include <cerrno>
#include <cstring>

namespace deltasync {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kVerifyFailed:
      return "verification failed";
    case ErrorCode::kIo:
      return "I/O error";
    case ErrorCode::kNoSpace:
      return "no space";
    case ErrorCode::kEngine:
      return "engine error";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kProtocol:
      return "protocol error";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "unknown";
}

Error errno_error(int errnum, std::string_view context) {
  ErrorCode code = ErrorCode::kIo;
  if (errnum == ENOENT) code = ErrorCode::kNotFound;
  if (errnum == ENOSPC || errnum == EDQUOT) code = ErrorCode::kNoSpace;
  if (errnum == ETIMEDOUT) code = ErrorCode::kTimeout;
  if (errnum == ECONNREFUSED || errnum == ECONNRESET || errnum == EPIPE)
    code = ErrorCode::kUnavailable;
  std::string message(context);
  message += ": ";
  message += std::strerror(errnum);
  if (code == ErrorCode::kNoSpace) message += " (free space on that file system and run again)";
  return Error(code, std::move(message));
}

}  // namespace deltasync
