#!/usr/bin/env bash
# Private Docker engines (dockerd) for tests and demos.
#
#   test-engine.sh start NAME     start engine NAME (idempotent), print its address
#   test-engine.sh stop NAME      stop it, unmount what it left, remove its state
#   test-engine.sh stop-all       stop every engine under the root
#   test-engine.sh address NAME   print its address (whether running or not)
#   test-engine.sh status NAME    exit 0 if it answers /_ping, else 1
#
# Each engine keeps all its state in ${DELTASYNC_ENGINE_ROOT:-/var/tmp/deltasync-engines}/NAME/:
#   d.sock        the Engine API socket (address: unix://ROOT/NAME/d.sock)
#   data/         --data-root (vfs storage driver: no overlay mounts needed)
#   x/            --exec-root (the private containerd's socket lives in x/containerd/)
#   dockerd.pid   --pidfile; launch.pid: the pid we started
#   dockerd.log   the daemon's (and its containerd's) log
#   daemon.json   an empty config, so /etc/docker/daemon.json cannot interfere
#
# dockerd 20.10 (Debian) starts and supervises its own containerd when no
# --containerd is given, with socket and state under --exec-root and
# --data-root, so two engines with distinct roots do not share anything
# (checked: two daemons each run "containerd --config ROOT/NAME/x/containerd/
# containerd.toml"). No bridge, no iptables: the engines have no network;
# `docker build --network none` with RUN steps works (runc, no network).
#
# Robustness: `stop` finds the daemon from its pidfiles and, as a fallback,
# every process whose command line names this engine's directory (dockerd,
# its containerd, leftover shims), sends SIGTERM, waits, then SIGKILL; zombies
# count as gone. It then unmounts whatever is still mounted under the
# directory (dockerd bind-mounts its data-root onto itself) before removing
# it. `start` over a dead engine's leftovers cleans them first. Start and
# stop of one NAME are serialised with flock, so parallel ctest runs are safe.
#
# $DELTASYNC_DOCKERD_EXTRA_ARGS (split on spaces) is added to dockerd's
# command line, e.g. "--insecure-registry 10.77.0.1:5000" for benchmarks.
# $DELTASYNC_DOCKERD_STORAGE_DRIVER (default vfs) is the classic store's
# storage driver, e.g. overlay2 (what production hosts run) for benchmarks;
# the containerd image store keeps its native snapshotter.
# The engine's kind is $DELTASYNC_TEST_ENGINE_KIND (read at start):
#   docker20-classic     (default) Debian 12's dockerd 20.10, classic store, vfs
#   docker28-classic     forky's dockerd 28.5 in scripts/forky-root.sh's chroot, vfs
#   docker28-containerd  the same with the containerd image store
#                        ("features": {"containerd-snapshotter": true}, native
#                        snapshotter): what fresh Docker 29 installs use
#   containerd16         Debian 12's containerd 1.6 alone (no Docker): a k3s or
#                        kubeadm node; address containerd://ROOT/NAME/c.sock?
#                        snapshotter=native (namespace k8s.io), state in root/
#                        and state/, config in containerd.toml (CRI off: no pods)
#   containerd2          forky's containerd 2.x, the same way, in the chroot
# DELTASYNC_TEST_SITE_ENGINE_KIND, when set, is the kind of the engine named
# "receiver" (the site) instead: a Docker build host beside a containerd site.
# `start` and `address` print the engine's address (also kept in ROOT/NAME/address).
# A forky engine runs `chroot ROOT dockerd` with the engine directory shared
# into the chroot at the same path, so its socket is the same file inside and
# out; `stop` also unmounts what the engine mounted under the chroot's view.
#
# Needs root (dockerd does), curl or the docker CLI (for /_ping), flock.
set -euo pipefail

ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/deltasync-engines}"
START_TIMEOUT="${DELTASYNC_ENGINE_START_TIMEOUT:-60}"
STOP_TIMEOUT="${DELTASYNC_ENGINE_STOP_TIMEOUT:-20}"
SOCKET_MAX=107  # sun_path is 108 bytes including the terminating NUL
SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"

die() {
  echo "test-engine: $*" >&2
  exit 1
}

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Make ROOT absolute without requiring it to exist.
case "$ROOT" in
  /*) ;;
  *) ROOT="$PWD/$ROOT" ;;
esac
ROOT="${ROOT%/}"

check_name() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] ||
    die "bad engine name '$1' (use letters, digits, '.', '_', '-')"
}

engine_dir() { echo "$ROOT/$1"; }
socket_path() {
  if [ -r "$ROOT/$1/engine.conf" ] && grep -q '^kind=containerd' "$ROOT/$1/engine.conf"; then
    echo "$ROOT/$1/c.sock"
  else
    echo "$ROOT/$1/d.sock"
  fi
}
address_of() {
  if [ -r "$ROOT/$1/address" ]; then cat "$ROOT/$1/address"; else echo "unix://$(socket_path "$1")"; fi
}
kind_of() {
  if [ "$1" = receiver ] && [ -n "${DELTASYNC_TEST_SITE_ENGINE_KIND:-}" ]; then
    echo "$DELTASYNC_TEST_SITE_ENGINE_KIND"
  else
    echo "${DELTASYNC_TEST_ENGINE_KIND:-docker20-classic}"
  fi
}

# True if pid $1 exists and is not a zombie.
alive() {
  local pid="$1" state
  [ -n "$pid" ] || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  # Field 3 of /proc/PID/stat is the state; the command name (field 2) may
  # contain spaces, so take what follows the last ')'.
  state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]
}

ping_engine() {
  local sock="$1"
  [ -S "$sock" ] || return 1
  case "$sock" in
    */c.sock)
      local ctr=ctr froot
      if [ -r "$(dirname "$sock")/engine.conf" ] && grep -q '^chroot=' "$(dirname "$sock")/engine.conf"; then
        froot="$(sed -n 's/^chroot=//p' "$(dirname "$sock")/engine.conf")"
        ctr="chroot $froot ctr"
      fi
      $ctr --address "$sock" --timeout 5s version >/dev/null 2>&1
      return
      ;;
  esac
  if command -v curl >/dev/null 2>&1; then
    [ "$(curl -fsS --max-time 5 --unix-socket "$sock" http://localhost/_ping 2>/dev/null)" = "OK" ]
  else
    docker -H "unix://$sock" version >/dev/null 2>&1
  fi
}

# Every live process that belongs to engine directory $1: the recorded pids
# plus any engine program (dockerd, containerd, shims, runc) whose command
# line mentions the directory.
engine_pids() {
  local dir="$1" pid f cmd
  local -A seen=()
  for f in "$dir/dockerd.pid" "$dir/launch.pid" "$dir/containerd.pid"; do
    if [ -r "$f" ]; then
      pid="$(tr -dc '0-9' <"$f" 2>/dev/null || true)"
      if alive "$pid" && [ -z "${seen[$pid]:-}" ]; then
        seen[$pid]=1
        echo "$pid"
      fi
    fi
  done
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"
    pid="${pid%/cmdline}"
    [ "$pid" = "$$" ] && continue
    # Only engine programs: never a shell or tool that merely names the path.
    case "$(cat "/proc/$pid/comm" 2>/dev/null || true)" in
      dockerd | containerd | containerd-shim* | runc | docker-init | docker-proxy) ;;
      *) continue ;;
    esac
    cmd="$(tr '\0' ' ' <"$f" 2>/dev/null || true)"
    case "$cmd" in
      *"$dir/"*)
        if alive "$pid" && [ -z "${seen[$pid]:-}" ]; then
          seen[$pid]=1
          echo "$pid"
        fi
        ;;
    esac
  done
}

# Waits up to $1 seconds for all pids in the rest of the arguments to die.
wait_dead() {
  local timeout="$1" deadline pid any
  shift
  deadline=$((SECONDS + timeout))
  while :; do
    any=0
    for pid in "$@"; do
      if alive "$pid"; then any=1; fi
    done
    [ "$any" = 0 ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# Mount points at or under directory $1, deepest first.
mounts_under() {
  local dir="$1"
  # Field 5 of mountinfo is the mount point (octal-escaped; our paths have no spaces).
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

unmount_all() {
  local dir="$1" m
  for _ in 1 2 3; do
    local left=0
    while IFS= read -r m; do
      [ -n "$m" ] || continue
      left=1
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(mounts_under "$dir")
    [ "$left" = 0 ] && return 0
  done
  [ -z "$(mounts_under "$dir")" ]
}

# Stops engine directory $1 (lock held by the caller).
stop_dir() {
  local dir="$1" pids main
  [ -e "$dir" ] || return 0
  mapfile -t pids < <(engine_pids "$dir")
  if [ "${#pids[@]}" -gt 0 ]; then
    main=""
    if [ -r "$dir/dockerd.pid" ]; then main="$(tr -dc '0-9' <"$dir/dockerd.pid" || true)"; fi
    if [ -z "$main" ] && [ -r "$dir/launch.pid" ]; then main="$(tr -dc '0-9' <"$dir/launch.pid" || true)"; fi
    # dockerd first: it stops its containerd itself.
    if alive "$main"; then
      kill -TERM "$main" 2>/dev/null || true
      wait_dead "$STOP_TIMEOUT" "$main" || true
    fi
    mapfile -t pids < <(engine_pids "$dir")
    if [ "${#pids[@]}" -gt 0 ]; then
      kill -TERM "${pids[@]}" 2>/dev/null || true
      if ! wait_dead 5 "${pids[@]}"; then
        echo "test-engine: $(basename "$dir"): killing ${pids[*]} with SIGKILL" >&2
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait_dead 10 "${pids[@]}" || die "$(basename "$dir"): processes ${pids[*]} do not die"
      fi
    fi
  fi
  if [ -r "$dir/engine.conf" ] && grep -q '^chroot=' "$dir/engine.conf"; then
    local froot
    froot="$(sed -n 's/^chroot=//p' "$dir/engine.conf")"
    unmount_all "$froot$dir" || die "$(basename "$dir"): cannot unmount under $froot$dir"
  fi
  unmount_all "$dir" || die "$(basename "$dir"): cannot unmount: $(mounts_under "$dir" | tr '\n' ' ')"
  # Nothing is mounted below any more, so this cannot reach outside $dir.
  rm -rf --one-file-system "$dir" || die "cannot remove $dir"
}

with_lock() {
  local name="$1"
  shift
  mkdir -p "$ROOT"
  exec 9>"$ROOT/.$name.lock"
  flock -w $((START_TIMEOUT + STOP_TIMEOUT + 30)) 9 || die "$name: timed out waiting for the lock"
  "$@"
}

do_start() {
  local name="$1" dir sock pid deadline
  dir="$(engine_dir "$name")"
  local kind
  kind="$(kind_of "$name")"
  case "$kind" in
    containerd*) sock="$dir/c.sock" ;;
    *) sock="$dir/d.sock" ;;
  esac
  [ "${#sock}" -le "$SOCKET_MAX" ] ||
    die "socket path $sock is ${#sock} bytes, over the $SOCKET_MAX-byte limit of unix sockets; set a shorter DELTASYNC_ENGINE_ROOT"
  [ "$(id -u)" = 0 ] || die "dockerd needs root (run as root or with sudo)"
  local launcher=() config='{}' driver="${DELTASYNC_DOCKERD_STORAGE_DRIVER:-vfs}"
  case "$kind" in
    docker20-classic)
      command -v dockerd >/dev/null 2>&1 || die "dockerd not found (apt-get install docker.io)"
      ;;
    containerd16)
      command -v containerd >/dev/null 2>&1 || die "containerd not found (apt-get install containerd)"
      ;;
    docker28-classic | docker28-containerd | containerd2)
      "$SCRIPT_DIR/forky-root.sh" setup >&2 || die "$name: no forky chroot for $kind"
      local froot
      froot="$("$SCRIPT_DIR/forky-root.sh" path)"
      case "$dir" in
        /var/tmp/* | /tmp/*) ;;
        *) die "$name: engine directory $dir is not under /var/tmp or /tmp, which the chroot shares" ;;
      esac
      launcher=(chroot "$froot")
      if [ "$kind" = docker28-containerd ]; then
        config='{"features": {"containerd-snapshotter": true}, "storage-driver": "native"}'
        driver=""
      fi
      ;;
    *) die "unknown engine kind '$kind' (docker20-classic, docker28-classic, docker28-containerd, containerd16, containerd2)" ;;
  esac

  if ping_engine "$sock"; then
    address_of "$name"
    return 0
  fi
  # Leftovers of an engine that died (or is hung): clear them and start clean.
  if [ -e "$dir" ]; then
    echo "test-engine: $name: cleaning up a previous engine that is not answering" >&2
    stop_dir "$dir"
  fi

  if [[ "$kind" == containerd* ]]; then
    start_containerd "$name" "$dir" "$sock" "$kind" "${launcher[@]}"
    return
  fi
  mkdir -p "$dir/data" "$dir/x"
  echo "$config" >"$dir/daemon.json"
  {
    echo "name=$name"
    echo "kind=$kind"
    [ "${#launcher[@]}" -eq 0 ] || echo "chroot=${launcher[1]}"
  } >"$dir/engine.conf"
  # New session, no inherited descriptors: ctest waits for the test's
  # stdout/stderr to close, so the daemon must not hold them.
  setsid "${launcher[@]}" dockerd \
    --config-file "$dir/daemon.json" \
    ${driver:+--storage-driver=$driver} \
    --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    --data-root "$dir/data" \
    --exec-root "$dir/x" \
    --pidfile "$dir/dockerd.pid" \
    --host "unix://$sock" \
    ${DELTASYNC_DOCKERD_EXTRA_ARGS:-} \
    </dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/launch.pid"

  deadline=$((SECONDS + START_TIMEOUT))
  until ping_engine "$sock"; do
    if ! alive "$pid"; then
      echo "test-engine: $name: dockerd exited during start-up; last log lines:" >&2
      tail -n 20 "$dir/dockerd.log" >&2 || true
      stop_dir "$dir"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "test-engine: $name: dockerd did not answer /_ping within ${START_TIMEOUT}s; last log lines:" >&2
      tail -n 20 "$dir/dockerd.log" >&2 || true
      stop_dir "$dir"
      exit 1
    fi
    sleep 0.3
  done
  address_of "$name"
}

# A containerd alone: its own root, state and socket under the engine
# directory, the native snapshotter (no overlay mounts), and no CRI plugin.
start_containerd() {
  local name="$1" dir="$2" sock="$3" kind="$4" pid deadline
  shift 4
  local launcher=("$@")
  mkdir -p "$dir/root" "$dir/state"
  cat >"$dir/containerd.toml" <<EOF_TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF_TOML
  # containerd 2.x imports through its transfer service, which unpacks only
  # for the platforms configured (the CRI plugin would add this host's).
  if [ "$kind" = containerd2 ]; then
    cat >>"$dir/containerd.toml" <<EOF_TOML
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  snapshotter = "native"
EOF_TOML
  fi
  {
    echo "name=$name"
    echo "kind=$kind"
    [ "${#launcher[@]}" -eq 0 ] || echo "chroot=${launcher[1]}"
  } >"$dir/engine.conf"
  echo "containerd://$sock?snapshotter=native" >"$dir/address"
  setsid "${launcher[@]}" containerd --config "$dir/containerd.toml" \
    </dev/null >>"$dir/containerd.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$dir/launch.pid"
  deadline=$((SECONDS + START_TIMEOUT))
  until ping_engine "$sock"; do
    if ! alive "$pid" || [ "$SECONDS" -ge "$deadline" ]; then
      echo "test-engine: $name: containerd did not start; last log lines:" >&2
      tail -n 20 "$dir/containerd.log" >&2 || true
      stop_dir "$dir"
      exit 1
    fi
    sleep 0.3
  done
  address_of "$name"
}

do_stop() {
  stop_dir "$(engine_dir "$1")"
}

do_stop_all() {
  local conf dir name rc=0
  [ -d "$ROOT" ] || return 0
  # Engines directly under ROOT, and one level deeper (per-build-dir roots
  # such as ROOT/<hash>/sender used by the CTest fixtures).
  while IFS= read -r conf; do
    dir="$(dirname "$conf")"
    name="$(basename "$dir")"
    echo "test-engine: stopping $dir" >&2
    (DELTASYNC_ENGINE_ROOT="$(dirname "$dir")" "$0" stop "$name") || rc=1
  done < <(find "$ROOT" -mindepth 2 -maxdepth 3 -name engine.conf -type f 2>/dev/null | sort)
  find "$ROOT" -mindepth 1 -maxdepth 2 -name '.*.lock' -type f -delete 2>/dev/null || true
  find "$ROOT" -mindepth 1 -maxdepth 1 -type d -empty -delete 2>/dev/null || true
  rmdir "$ROOT" 2>/dev/null || true
  return "$rc"
}

cmd="${1:-}"
case "$cmd" in
  start)
    [ $# -eq 2 ] || usage
    check_name "$2"
    with_lock "$2" do_start "$2"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    check_name "$2"
    with_lock "$2" do_stop "$2"
    ;;
  stop-all)
    [ $# -eq 1 ] || usage
    do_stop_all
    ;;
  address)
    [ $# -eq 2 ] || usage
    check_name "$2"
    address_of "$2"
    ;;
  status)
    [ $# -eq 2 ] || usage
    check_name "$2"
    ping_engine "$(socket_path "$2")"
    ;;
  *)
    usage
    ;;
esac
