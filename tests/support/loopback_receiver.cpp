#include "tests/support/loopback_receiver.h"

#include <chrono>
#include <regex>

namespace deltasync::testing {

::testing::AssertionResult start_loopback_receiver(const ReceiverSpec& spec,
                                                   std::optional<BackgroundProcess>& process,
                                                   std::string& port) {
  process.reset();
  std::vector<std::string> argv = {spec.binary,
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--cert",
                                   (spec.pki_dir / "receiver.pem").string(),
                                   "--key",
                                   (spec.pki_dir / "receiver.key").string(),
                                   "--ca",
                                   (spec.pki_dir / "ca.pem").string(),
                                   "--store",
                                   spec.store.string(),
                                   "--engine",
                                   spec.engine,
                                   "--log-level",
                                   "info"};
  argv.insert(argv.end(), spec.extra.begin(), spec.extra.end());
  auto started = BackgroundProcess::start(argv, spec.log);
  if (!started) return ::testing::AssertionFailure() << "cannot start " << spec.binary;
  process.emplace(std::move(*started));
  if (!process->wait_for_log("listening on", std::chrono::seconds(30)))
    return ::testing::AssertionFailure() << "deltarecvd did not listen within 30 s:\n"
                                         << process->log();
  // The last such line: a log file may be reused by a restarted receiver.
  std::string log = process->log();
  std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  port.clear();
  for (auto it = std::sregex_iterator(log.begin(), log.end(), listening);
       it != std::sregex_iterator(); ++it)
    port = (*it)[1];
  if (port.empty()) return ::testing::AssertionFailure() << "no port in the log:\n" << log;
  return ::testing::AssertionSuccess();
}

}  // namespace deltasync::testing
