// Test support: a real deltarecvd on 127.0.0.1 (a port the kernel picks),
// with the certificates deploy/make-certs.sh wrote to `pki_dir`
// (receiver.pem, receiver.key, ca.pem), logging at info to `log`.
//
//   ASSERT_TRUE(start_loopback_receiver({DELTARECVD_BINARY, pki, store, engine, {}, log},
//                                       receiver_, port_));
//
// Thread safety: one owner, as BackgroundProcess.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/background_process.h"

namespace deltasync::testing {

struct ReceiverSpec {
  std::string binary;  // the deltarecvd under test
  std::filesystem::path pki_dir;
  std::filesystem::path store;
  std::string engine;              // unix://PATH
  std::vector<std::string> extra;  // more flags
  std::filesystem::path log;
};

// Starts it (replacing what `process` held), waits up to 30 s for its
// "listening on 127.0.0.1:PORT" line and sets `port`. The failure carries
// the receiver's log.
::testing::AssertionResult start_loopback_receiver(const ReceiverSpec& spec,
                                                   std::optional<BackgroundProcess>& process,
                                                   std::string& port);

}  // namespace deltasync::testing
