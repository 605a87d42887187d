#!/usr/bin/env bash
# Time to "image loaded on the site" over a thin link (2 Mbit/s down,
# 512 kbit/s up; scripts/thin-link.sh), deltasync against the alternatives.
#
#   bench/run-thinlink-bench.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# The site is the network namespace ds-site: its dockerd (scripts/test-engine.sh
# run inside it with `nsenter --net`; the Engine API is a unix socket on the
# shared file system)
# and its deltarecvd (listening on 10.77.0.2, certificate naming that
# address) run there; the build host's engine and deltasend run outside. The
# pair is built by bench/pairs/$THIN_PAIR.sh (default deps-bump) in the
# build engine; the site engine gets OLD beforehand (docker save | load on
# the unix socket, not over the link: the site held it already).
#
# Measured, each ending with NEW's image ID verified on the site engine:
#   deltasend   `deltasend NEW --to 10.77.0.2` (LOCAL basis; the receiver
#               exports its basis from its engine once, included), then again
#               with --no-local-basis against a fresh store (REMOTE);
#   save|zstd   `docker save NEW | zstd -19 -T2` through one TCP connection
#               over the link into `zstd -d | docker load` on the site
#               (streamed; Docker 20.10's load does not read zstd itself);
# and estimated: a registry pull = gzip bytes of the layers the site lacks
# (deltasend's pull estimate) / 2 Mbit/s, transfer time only.
# Prints a Markdown table and writes it to $BENCH_RESULTS/thinlink-latest.md.
#
# Env: THIN_PAIR (default deps-bump); BENCH_RESULTS (default bench/results);
#      BENCH_WORKDIR (default /var/tmp/deltasync-thinlink-work, emptied at the
#      end unless BENCH_KEEP=1); THIN_KEEP_LINK=1 leaves the link up;
#      DELTASYNC_ENGINE_ROOT (default /var/tmp/ds-thin; see test-engine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-thinlink-work}"
results="${BENCH_RESULTS:-$repo/bench/results}"
pair="${THIN_PAIR:-deps-bump}"
export DELTASYNC_ENGINE_ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/ds-thin}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
SITE_IP=10.77.0.2
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$1" "${@:2}"; }
# Only the network namespace: `ip netns exec` also remounts /sys, which hides
# the cgroup mounts dockerd needs ("Devices cgroup isn't mounted").
in_site() { nsenter --net=/run/netns/ds-site "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
die() {
  echo "run-thinlink-bench: $*" >&2
  exit 1
}
for c in "$DOCKER" python3 zstd ip tc nsenter; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done
if [ ! -x "$build_dir/sender/deltasend" ] || [ ! -x "$build_dir/receiver/deltarecvd" ]; then
  die "build deltasend and deltarecvd in $build_dir first"
fi

rm -rf "$work"
mkdir -p "$work/bin" "$results"
cp "$build_dir/sender/deltasend" "$build_dir/receiver/deltarecvd" "$work/bin/"
# The deltasync-gzip helpers go beside the copies (<bin>/../libexec/deltasync).
rm -rf "$work/libexec" && mkdir -p "$work/libexec"
if [ -d "$build_dir/libexec/deltasync" ]; then cp -r "$build_dir/libexec/deltasync" "$work/libexec/"; fi
deltasend="$work/bin/deltasend"
deltarecvd="$work/bin/deltarecvd"

recv_pid="" build_started=0 site_started=0
stop_receiver() {
  if [ -n "$recv_pid" ]; then
    kill "$recv_pid" 2>/dev/null || true
    wait "$recv_pid" 2>/dev/null || true
    recv_pid=""
  fi
}
cleanup() {
  stop_receiver
  if [ "$site_started" = 1 ]; then scripts/test-engine.sh stop thin-site >/dev/null 2>&1 || true; fi
  if [ "$build_started" = 1 ]; then scripts/test-engine.sh stop thin-build >/dev/null 2>&1 || true; fi
  [ -n "${THIN_KEEP_LINK:-}" ] || scripts/thin-link.sh down >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

scripts/thin-link.sh up >&2
engine="$(scripts/test-engine.sh start thin-build)"
build_started=1
site="$(in_site scripts/test-engine.sh start thin-site)"
site_started=1
bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >&2

old="thin-$pair:old" new="thin-$pair:new"
if docker_h "$engine" image inspect "$old" "$new" >/dev/null 2>&1; then
  echo "== $pair: $old and $new are already in the build engine" >&2
else
  echo "== $pair: building the pair" >&2
  read -r old new < <(bench/pairs/"$pair".sh "$engine" thin- "$work/pair") ||
    die "$pair: generator failed"
  [ -n "${new:-}" ] || die "$pair: generator printed no tags"
fi
want="$(docker_h "$engine" image inspect -f '{{.Id}}' "$new")"
docker_h "$engine" save "$old" | docker_h "$site" load -q >/dev/null
site_id() { docker_h "$site" image inspect -f '{{.Id}}' "$new" 2>/dev/null || echo missing; }

bash deploy/make-certs.sh "$work/pki" --receiver-name thin-site --receiver-ip "$SITE_IP" \
  --sender-name build-1 >/dev/null

# start_receiver STORE: deltarecvd inside the namespace, on the thin side.
start_receiver() {
  stop_receiver
  : >"$work/deltarecvd.log"
  # nsenter itself (not the in_site function, a subshell) so that $! is deltarecvd.
  nsenter --net=/run/netns/ds-site "$deltarecvd" --listen "$SITE_IP:7443" --cert "$work/pki/receiver.pem" \
    --key "$work/pki/receiver.key" --ca "$work/pki/ca.pem" --store "$1" --engine "$site" \
    --log-level info >>"$work/deltarecvd.log" 2>&1 &
  recv_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$work/deltarecvd.log" && return 0
    sleep 0.2
  done
  cat "$work/deltarecvd.log" >&2
  die "deltarecvd did not start"
}

# send_run NAME STORE [deltasend options...]: one transfer; JSON in $work/NAME.json.
send_run() {
  local name="$1" store="$2"
  shift 2
  docker_h "$site" image rm -f "$new" >/dev/null 2>&1 || true
  start_receiver "$store"
  echo "== $pair: deltasend ($name)" >&2
  local t0
  t0="$(now)"
  "$deltasend" "$new" --to "$SITE_IP:7443" --cert "$work/pki/sender-build-1.pem" \
    --key "$work/pki/sender-build-1.key" --ca "$work/pki/ca.pem" --engine "$engine" \
    --cache-dir "$work/cache-$name" --json "$@" >"$work/$name.json" ||
    die "deltasend ($name) failed; receiver log: $(tail -5 "$work/deltarecvd.log")"
  since "$t0" >"$work/$name.wall"
  [ "$(site_id)" = "$want" ] || die "deltasend ($name): the site holds $(site_id), not $want"
}
send_run local "$work/store-local"
send_run remote "$work/store-remote" --no-local-basis
stop_receiver

echo "== $pair: docker save | zstd -19 | link | docker load" >&2
docker_h "$site" image rm -f "$new" >/dev/null 2>&1 || true
cat >"$work/recv.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
open(sys.argv[3], "w").close()  # listening
c, _ = s.accept()
out = sys.stdout.buffer
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    out.write(b)
out.flush()
PY
cat >"$work/send.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
n = 0
while True:
    b = sys.stdin.buffer.read(1 << 16)
    if not b:
        break
    s.sendall(b)
    n += len(b)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(n)
PY
rm -f "$work/listening"
in_site bash -c "python3 '$work/recv.py' $SITE_IP 9100 '$work/listening' | zstd -d -q | $DOCKER -H '$site' load -q" \
  >"$work/load.out" 2>&1 &
load_pid=$!
for _ in $(seq 1 50); do
  [ -e "$work/listening" ] && break
  sleep 0.1
done
t0="$(now)"
docker_h "$engine" save "$new" | zstd -19 -T2 -q | python3 "$work/send.py" "$SITE_IP" 9100 >"$work/zstd.bytes"
wait "$load_pid" || die "docker load on the site failed: $(cat "$work/load.out")"
zstd_wall="$(since "$t0")"
[ "$(site_id)" = "$want" ] || die "docker load: the site holds $(site_id), not $want"

python3 - "$work" "$pair" "$zstd_wall" "$(cat "$work/zstd.bytes")" "$results/thinlink-latest.md" <<'PY'
import json, sys
work, pair, zstd_wall, zstd_bytes, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rate = 2e6 / 8  # bytes per second
rows = []
for name in ("local", "remote"):
    j = json.loads(open(f"{work}/{name}.json").read().strip().splitlines()[-1])  # the result event
    wall = float(open(f"{work}/{name}.wall").read())
    rows.append((f"deltasend ({j['mode']})", j["socket_bytes_sent"], j["socket_bytes_received"], wall))
    pull = j["pull_estimate_bytes"]
    missing = j["missing_layer_bytes"]
rows.append(("docker save \\| zstd -19 \\| zstd -d \\| docker load", zstd_bytes, 0, zstd_wall))
mib = lambda b: "%.2f MiB" % (b / 1048576) if b >= 1048576 else "%.1f KiB" % (b / 1024)
lines = [
    f"Pair `{pair}`: {mib(missing)} of layers the site lacks; link 2 Mbit/s down, 512 kbit/s up (tbf).",
    "",
    "| method | bytes to the site | bytes back | time to loaded on the site |",
    "|---|---:|---:|---:|",
]
for name, sent, back, wall in rows:
    lines.append(f"| {name} | {mib(sent)} | {mib(back)} | {wall:.1f} s |")
lines.append(f"| registry pull (estimate: gzip of the missing layers / 2 Mbit/s) | {mib(pull)} | - | {pull / rate:.1f} s (transfer only) |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
