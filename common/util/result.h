// Result and error types used across deltasync.
//
// Every fallible function returns Result<T> (std::expected<T, Error>) or
// Status (Result<void>). Errors carry a code for programs and a message for
// people, written "context: detail" and extended outward with with_context(),
// so that a failure deep in a tar parser reaches the user as
// "layer sha256:ab..: tar: entry 'app/x': bad header checksum".
// Foreign error kinds (errno, OpenSSL, librsync, zstd, engine HTTP) are
// converted once, in the wrapper that calls them.
//
// Thread safety: value types; no shared state.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace deltasync {

enum class ErrorCode {
  kInvalidArgument,  // the caller (often the user) asked for something malformed
  kNotFound,         // a named thing does not exist
  kCorrupt,          // input data is malformed, truncated or fails a check
  kVerifyFailed,     // content does not hash to its declared digest
  kIo,               // an operating-system I/O error
  kNoSpace,          // ENOSPC / EDQUOT
  kEngine,           // the container engine refused or failed
  kUnavailable,      // a peer or engine cannot be reached
  kTimeout,          // a deadline passed
  kUnsupported,      // valid input we do not handle
  kProtocol,         // a peer broke the protocol
  kCancelled,        // shutdown or user interrupt
  kInternal,         // a bug
};

std::string_view error_code_name(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: <old message>", unless the
  // message already says "context: " somewhere (an error that crossed from
  // the peer names the layer it was about, and so does our own context).
  Error with_context(std::string_view context) const& {
    Error copy = *this;
    return std::move(copy).with_context(context);
  }
  Error with_context(std::string_view context) && {
    std::string prefix = std::string(context) + ": ";
    if (message_.find(prefix) == std::string::npos) message_.insert(0, prefix);
    return std::move(*this);
  }

 private:
  ErrorCode code_;
  std::string message_;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

inline std::unexpected<Error> make_error(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}

inline Status ok_status() {
  return {};
}

// Adds context to the error of a failed result; passes a success through.
template <class T>
Result<T> with_context(Result<T> result, std::string_view context) {
  if (!result) return std::unexpected<Error>(std::move(result.error()).with_context(context));
  return result;
}

// Converts an errno value into an Error: "<context>: <strerror>".
Error errno_error(int errnum, std::string_view context);

}  // namespace deltasync

#define DS_CONCAT_INNER(a, b) a##b
#define DS_CONCAT(a, b) DS_CONCAT_INNER(a, b)

// Returns the error of a Status/Result expression from the enclosing function.
#define DS_RETURN_IF_ERROR(expr)                                            \
  do {                                                                      \
    auto&& ds_status_ = (expr);                                             \
    if (!ds_status_) return std::unexpected(std::move(ds_status_).error()); \
  } while (false)

// Evaluates a Result expression; on error returns it, else moves the value into lhs.
#define DS_ASSIGN_OR_RETURN(lhs, expr) \
  DS_ASSIGN_OR_RETURN_IMPL(DS_CONCAT(ds_result_, __LINE__), lhs, expr)
#define DS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)            \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(*tmp)
