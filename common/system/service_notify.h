// Service notifications to systemd (the sd_notify protocol).
//
// What: tells the service manager about the daemon's life cycle: ready to
// serve (Type=notify units are "starting" until then, and `systemctl start`
// waits for it), a one-line status shown by `systemctl status`, stopping,
// and watchdog keep-alives (WatchdogSec=: systemd kills and restarts a
// daemon that stops pinging).
//
// Why: deltarecvd runs as a Type=notify systemd service
// (deploy/deltarecvd.service). Readiness must mean "listening and the store
// is open", which only the daemon knows; and a hung daemon (deadlocked
// event loop) should be restarted rather than silently refuse transfers.
// This is the only place that includes <systemd/sd-daemon.h>, so the rest of
// the code sees these few functions and not libsystemd.
//
// Outside systemd (NOTIFY_SOCKET unset: a shell, a test, a container) every
// function does nothing and watchdog_interval() is empty. A notification
// that cannot be delivered is logged as a warning and otherwise ignored: the
// daemon keeps running, and systemd's own timeouts report the problem.
//
// Status texts are one line: a newline (which would start a new assignment
// in the protocol) is replaced by a space.
//
// Thread safety: every function may be called from any thread at any time;
// each call sends one datagram on its own socket and only reads the
// environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID), never changes it.
// Do not setenv()/unsetenv() those variables from another thread meanwhile.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace deltasync {

// "READY=1" plus "STATUS=<status>" (no STATUS when empty): start-up is done.
void notify_ready(std::string_view status);
// "STATUS=<status>": a human-readable line for `systemctl status`.
void notify_status(std::string_view status);
// "STOPPING=1": shutdown has begun (systemd then waits for the exit).
void notify_stopping();
// "WATCHDOG=1": a keep-alive; send it at least every watchdog_interval() / 2.
void notify_watchdog();
// The unit's watchdog timeout (WatchdogSec=, passed as WATCHDOG_USEC for this
// process) when the watchdog is on and NOTIFY_SOCKET is set; empty otherwise.
// This is the full timeout: ping at half of it, as systemd recommends.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace deltasync
