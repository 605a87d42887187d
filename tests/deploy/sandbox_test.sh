#!/usr/bin/env bash
# deploy/deltarecvd.service under a real systemd: readiness through the
# notify socket, the watchdog setting, and the sandbox's reach.
#
#   sandbox_test.sh SOURCE_DIR SANDBOX_PROBE DELTARECVD
#
# systemd need not be PID 1 here: the test starts its own systemd 252 as
# PID 1 of new pid, mount, UTS, network and cgroup namespaces, with private
# /run, /var/lib and /etc (an overlay), so nothing on the machine changes.
# Units go to the private /etc/systemd/system:
#   fakeengine.service   sandbox_probe engine: sockets /run/docker.sock,
#                        /run/podman/podman.sock, /run/containerd/containerd.sock
#   deltarecvd.service   the unit from the source tree, unchanged but for a
#                        drop-in: ExecStart=sandbox_probe check (stands in for
#                        deltarecvd) and no default dependencies (no
#                        sysinit.target: only these two units run)
# and checks that the unit becomes active (READY=1 came through), its
# status text, WATCHDOG_USEC, the store's mode, and the probe's report of
# what it could and could not reach (tests/deploy/sandbox_probe.cpp).
# Then it runs the real DELTARECVD in the same unit with the example
# configuration deploy/deltarecvd.conf, unchanged, and certificates from
# deploy/make-certs.sh in /etc/deltasync: it must open its store, listen and
# report ready (the network namespace is private too, so port 7443 is ours),
# and keep its watchdog fed. Last, the package's maintainer scripts
# (deploy/debian) run against this systemd: enable without starting,
# try-restart on upgrade, stop on removal, clean up on purge.
# Needs root, unshare/nsenter (util-linux), systemd installed and a cgroup
# file system it can delegate from; exits 77 (CTest: skipped) without them.
set -euo pipefail

usage="usage: sandbox_test.sh SOURCE_DIR SANDBOX_PROBE DELTARECVD"
src=${1:?$usage}
probe=${2:?$usage}
daemon=${3:?$usage}
unit="$src/deploy/deltarecvd.service"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (namespaces, a private systemd)"
{ command -v unshare && command -v nsenter; } >/dev/null || skip "unshare/nsenter missing"
[ -x /lib/systemd/systemd ] || skip "systemd not installed (package systemd)"
[ -f "$unit" ] || fail "no unit at $unit"
[ -x "$probe" ] || fail "no probe at $probe"
[ -x "$daemon" ] || fail "no deltarecvd at $daemon"
[ -x "$src/deploy/make-certs.sh" ] || fail "no deploy/make-certs.sh"
command -v openssl >/dev/null || fail "openssl missing (make-certs.sh needs it)"

# ---- cgroups: systemd needs a hierarchy of its own; give it a child of ours.
# cgroup2 (the Debian 12 default) or hybrid (name=systemd v1 + cgroup2).
cg_dirs=()
cg_mode=
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cg_mode=unified
  cg_dirs+=("/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)")
elif [ "$(stat -fc %T /sys/fs/cgroup/systemd 2>/dev/null)" = cgroupfs ]; then
  cg_mode=hybrid
  cg_dirs+=("/sys/fs/cgroup/systemd$(sed -n 's/^[0-9]*:name=systemd://p' /proc/self/cgroup)")
  if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    cg_dirs+=("/sys/fs/cgroup/unified$(sed -n 's/^0:://p' /proc/self/cgroup)")
  fi
else
  skip "no cgroup2 or name=systemd hierarchy at /sys/fs/cgroup"
fi

work=$(mktemp -d /tmp/deltarecvd-sandbox-test.XXXXXX)
ns_init=
unshare_pid=
my_cgroups=()
cleanup() {
  if [ -n "$ns_init" ]; then kill -KILL "$ns_init" 2>/dev/null || true; fi
  if [ -n "$unshare_pid" ]; then wait "$unshare_pid" 2>/dev/null || true; fi
  local d
  for d in "${my_cgroups[@]}"; do
    # Deepest first; the namespace's processes are gone with its init.
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

for d in "${cg_dirs[@]}"; do
  mkdir "$d/deltarecvd-sandbox-test-$$" || skip "cannot create a cgroup under $d"
  my_cgroups+=("$d/deltarecvd-sandbox-test-$$")
done

# ---- what the private systemd will load
mkdir -p "$work/units/deltarecvd.service.d" "$work/etc-upper" "$work/etc-work"
"$src/deploy/make-certs.sh" "$work/certs" --receiver-name edge-host --sender-name build-1 \
  >"$work/make-certs.log" 2>&1 || { cat "$work/make-certs.log"; fail "make-certs.sh"; }
cp "$unit" "$work/units/deltarecvd.service"
cat >"$work/units/deltarecvd.service.d/test.conf" <<'EOF'
[Unit]
DefaultDependencies=no
Requires=fakeengine.service
After=fakeengine.service
[Service]
ExecStart=
ExecStart=/var/lib/deltasync-test/sandbox_probe check /var/lib/deltarecvd
StandardOutput=append:/var/lib/deltasync-test/deltarecvd.log
StandardError=append:/var/lib/deltasync-test/deltarecvd.log
EOF
cat >"$work/units/fakeengine.service" <<'EOF'
[Unit]
DefaultDependencies=no
[Service]
Type=notify
ExecStart=/var/lib/deltasync-test/sandbox_probe engine
StandardOutput=append:/var/lib/deltasync-test/engine.log
StandardError=append:/var/lib/deltasync-test/engine.log
EOF
cat >"$work/units/deltasync-test.target" <<'EOF'
[Unit]
DefaultDependencies=no
Wants=fakeengine.service deltarecvd.service
EOF

cat >"$work/inner.sh" <<EOF
#!/bin/bash
# PID 1 of the new namespaces until it becomes systemd.
set -euo pipefail
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mount -t overlay overlay -o lowerdir=/etc,upperdir=$work/etc-upper,workdir=$work/etc-work /etc
mkdir -p /etc/deltasync /var/lib/deltasync-test /etc/systemd/system
cp "$src/deploy/deltarecvd.conf" $work/certs/ca.pem $work/certs/receiver.pem $work/certs/receiver.key /etc/deltasync/
cp "$probe" /var/lib/deltasync-test/sandbox_probe
cp "$daemon" /var/lib/deltasync-test/deltarecvd
cp -r "$src/deploy/debian" /var/lib/deltasync-test/debian
# In the (private) /etc, where the maintainer scripts' deb-systemd-helper
# finds units, as it would find the package's in /lib.
cp -r "$work/units/." /etc/systemd/system/
# A policy-rc.d that forbids starting services (container images ship one)
# would turn the maintainer scripts' deb-systemd-invoke into no-ops.
if [ -e /usr/sbin/policy-rc.d ]; then
  mount --bind "$work/policy-rc.d" /usr/sbin/policy-rc.d
fi
# The cgroup namespace's view: our child cgroup is its root.
mount -t tmpfs tmpfs /sys/fs/cgroup
if [ "$cg_mode" = unified ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || true
fi
# Private /tmp and /var/tmp last (everything from $work is copied or
# mounted by now): PrivateTmp= directories made by this systemd vanish with
# the namespace even if it is killed.
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
exec /lib/systemd/systemd --system --unit=deltasync-test.target --log-target=console --log-level=notice
EOF
chmod +x "$work/inner.sh"
printf '#!/bin/sh\nexit 0\n' >"$work/policy-rc.d"
chmod +x "$work/policy-rc.d"

# Enter the child cgroups, then the new namespaces; systemd's output goes to
# a file (its stdin/stdout/stderr; /dev/console is the machine's).
# --kill-child: if this test is killed (CTest timeout), unshare's death
# takes the private systemd and everything under it along.
(
  for d in "${my_cgroups[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
  exec unshare --pid --fork --kill-child --mount --uts --cgroup --net --mount-proc /bin/bash "$work/inner.sh"
) >"$work/systemd.log" 2>&1 </dev/null &
unshare_pid=$!

in_ns() { nsenter -t "$ns_init" -m -p -u -n "$@"; }
for _ in $(seq 100); do
  ns_init=$(ps -o pid= --ppid "$unshare_pid" 2>/dev/null | tr -d ' ' | head -n1) || true
  [ -n "$ns_init" ] && [ "$(readlink "/proc/$ns_init/exe" 2>/dev/null)" = /usr/lib/systemd/systemd ] && break
  [ -n "$ns_init" ] && [ "$(readlink "/proc/$ns_init/exe" 2>/dev/null)" = /lib/systemd/systemd ] && break
  kill -0 "$unshare_pid" 2>/dev/null || { cat "$work/systemd.log"; fail "private systemd did not start"; }
  sleep 0.1
done
[ -n "$ns_init" ] || fail "private systemd did not start"

# ---- wait for READY=1 (Type=notify): "activating" until the notification arrives
wait_active() {
  local state=
  for _ in $(seq 150); do
    state=$(in_ns systemctl is-active deltarecvd.service 2>/dev/null) || true
    case "$state" in active | failed) break ;; esac
    sleep 0.2
  done
  if [ "$state" != active ]; then
    echo "--- systemctl status"
    in_ns systemctl status --no-pager deltarecvd.service fakeengine.service || true
    echo "--- service logs"
    in_ns sh -c 'tail -n 50 /var/lib/deltasync-test/*.log' || true
    fail "deltarecvd.service ($1) is '$state', not active: READY=1 did not reach systemd"
  fi
}
wait_active "probe"
echo "deltarecvd.service active (READY=1 received through the sandbox)"

status_text=$(in_ns systemctl show -p StatusText --value deltarecvd.service)
[ "$status_text" = "sandbox probe ready" ] || fail "StatusText '$status_text'"
watchdog=$(in_ns systemctl show -p WatchdogUSec --value deltarecvd.service)
echo "WatchdogUSec=$watchdog StatusText=$status_text"

store_mode=$(in_ns stat -c %a /var/lib/deltarecvd)
[ "$store_mode" = 700 ] || fail "store mode $store_mode, want 700"

expected="watchdog-usec: 60000000
uid: 0
connect /run/docker.sock: ok docker
connect /var/run/docker.sock: ok docker
connect /run/podman/podman.sock: ok podman
connect /run/containerd/containerd.sock: error No such file or directory
connect /run/systemd/private: error No such file or directory
connect /run/dbus/system_bus_socket: error No such file or directory
create /var/lib/deltarecvd/probe: ok
create /tmp/probe: ok
create /var/tmp/probe: ok
create /etc/deltasync/probe: error Read-only file system
create /run/probe: error Read-only file system
create /usr/probe: error Read-only file system
create /var/lib/probe: error Read-only file system
read /etc/deltasync/deltarecvd.conf: ok"
report=$(in_ns cat /var/lib/deltarecvd/report.txt) || fail "no report from the probe"
echo "--- probe report"
echo "$report"
if [ "$report" != "$expected" ]; then
  diff <(echo "$expected") <(echo "$report") || true
  fail "the sandbox differs from what deploy/deltarecvd.service promises (expected left, got right)"
fi

stop_service() {
  in_ns systemctl stop deltarecvd.service || fail "systemctl stop failed"
  local state
  state=$(in_ns systemctl is-active deltarecvd.service 2>/dev/null) || true
  [ "$state" = inactive ] || fail "after stop: '$state'"
}
stop_service

# ---- the real deltarecvd, example configuration, same unit
in_ns sh -c 'rm -rf /var/lib/deltarecvd/* &&
  sed -i "s|^ExecStart=/var/lib/deltasync-test/sandbox_probe .*|ExecStart=/var/lib/deltasync-test/deltarecvd --config /etc/deltasync/deltarecvd.conf|" \
    /etc/systemd/system/deltarecvd.service.d/test.conf &&
  echo WatchdogSec=2 >>/etc/systemd/system/deltarecvd.service.d/test.conf &&
  systemctl daemon-reload'
in_ns grep -q '^ExecStart=/var/lib/deltasync-test/deltarecvd --config' \
  /etc/systemd/system/deltarecvd.service.d/test.conf || fail "drop-in not switched to deltarecvd"
in_ns systemctl start --no-block deltarecvd.service || fail "systemctl start"
wait_active "deltarecvd --config /etc/deltasync/deltarecvd.conf"
status_text=$(in_ns systemctl show -p StatusText --value deltarecvd.service)
echo "deltarecvd: StatusText=$status_text"
case "$status_text" in
  "listening on 0.0.0.0:7443"*) ;;
  *) fail "deltarecvd's status '$status_text' (want 'listening on 0.0.0.0:7443...')" ;;
esac
# systemd's MainPID is deltarecvd itself (no wrapper, no fork).
main_pid=$(in_ns systemctl show -p MainPID --value deltarecvd.service)
[ "$(in_ns readlink "/proc/$main_pid/exe")" = /var/lib/deltasync-test/deltarecvd ] ||
  fail "MainPID $main_pid is not deltarecvd"
# Its watchdog pings get through: with WatchdogSec=2 (drop-in above) it is
# still the same process, never restarted, after several periods.
sleep 5
[ "$(in_ns systemctl show -p MainPID --value deltarecvd.service)" = "$main_pid" ] ||
  fail "deltarecvd was restarted (watchdog pings not received?)"
[ "$(in_ns systemctl show -p NRestarts --value deltarecvd.service)" = 0 ] || fail "NRestarts > 0"
[ "$(in_ns systemctl is-active deltarecvd.service)" = active ] || fail "deltarecvd no longer active"
echo "deltarecvd: watchdog (2 s) fed for 5 s"

# ---- the maintainer scripts with systemd running (DPKG_ROOT unset)
scripts=/var/lib/deltasync-test/debian
main_pid_of() { in_ns systemctl show -p MainPID --value deltarecvd.service; }
wants=/etc/systemd/system/multi-user.target.wants/deltarecvd.service
run_script() { # NAME ARGS...: as dpkg runs it on a live system
  local name=$1
  shift
  in_ns env -u DPKG_ROOT DPKG_MAINTSCRIPT_PACKAGE=deltasync DPKG_MAINTSCRIPT_NAME="$name" \
    sh "$scripts/$name" "$@"
}
# Upgrade (configure OLD-VERSION) of a running service: enabled, restarted.
run_script postinst configure 0.0.1 || fail "postinst configure (upgrade)"
in_ns test -L "$wants" || fail "postinst did not enable deltarecvd.service"
wait_active "after postinst upgrade"
[ "$(main_pid_of)" != "$main_pid" ] || fail "postinst (upgrade) did not restart the running service"
# Upgrade of a stopped service: stays stopped.
stop_service
run_script postinst configure 0.0.1 || fail "postinst configure (upgrade, stopped)"
[ "$(in_ns systemctl is-active deltarecvd.service)" = inactive ] || fail "postinst started a stopped service"
# First install (configure, no old version): enabled, not started.
run_script postinst configure || fail "postinst configure (install)"
[ "$(in_ns systemctl is-active deltarecvd.service)" = inactive ] || fail "postinst started the service on install"
# Removal stops it; purge drops the enable link.
in_ns systemctl start --no-block deltarecvd.service
wait_active "before prerm"
run_script prerm remove || fail "prerm remove"
[ "$(in_ns systemctl is-active deltarecvd.service)" = inactive ] || fail "prerm remove did not stop the service"
run_script postrm remove || fail "postrm remove"
run_script postrm purge || fail "postrm purge"
! in_ns test -L "$wants" || fail "postrm purge left $wants"
echo "maintainer scripts under systemd: enable without start, try-restart on upgrade, stop on remove, purge"
echo "PASS: deltarecvd.service sandbox"
