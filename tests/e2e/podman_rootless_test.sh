#!/usr/bin/env bash
# A site running rootless Podman: deltarecvd as an ordinary user, with no
# --engine and no DOCKER_HOST, finds that user's Podman API socket
# ($XDG_RUNTIME_DIR/podman/podman.sock) and loads into it.
#
#   podman_rootless_test.sh SOURCE_DIR DELTASEND DELTARECVD
#
# As root, it makes (once) the user "dsrootless" with subordinate IDs
# (useradd gives them on Debian; uidmap provides newuidmap), then runs as
# that user, in a private XDG_RUNTIME_DIR and HOME under a temp dir:
# `podman system service` (vfs, cgroupfs, file events; no network), the
# images (imported busybox + `podman build` of COPY steps) and deltarecvd.
# The build side is files: `podman save` of rlapp:1 and rlapp:2, after which
# the site keeps only rlapp:1. Then:
#   - deltasend docker-archive:rlapp-2.tar --to the user's deltarecvd
#     (REMOTE: the sender has no engine) ends with the site's rootless engine
#     holding rlapp:2 under the archive's config digest, and the session sent
#     a fraction of the new layer;
#   - deltasend bundle (base rlapp-1.tar) + `deltarecvd apply` as the user,
#     again without --engine, loads rlapp:2 with the same Id.
# Exit 77 (skipped) only when podman is not installed. Needs root (to make
# the user and run as it). Every wait is bounded.
set -euo pipefail

usage="usage: podman_rootless_test.sh SOURCE_DIR DELTASEND DELTARECVD"
src=${1:?$usage}
deltasend=${2:?$usage}
deltarecvd=${3:?$usage}
skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
command -v podman >/dev/null 2>&1 || skip "podman is not installed"
[ "$(id -u)" -eq 0 ] || fail "needs root (to make the test user and run as it)"
command -v newuidmap >/dev/null 2>&1 || fail "newuidmap missing (apt-get install uidmap)"

user=dsrootless
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh "$user" || fail "useradd $user"
fi
grep -q "^$user:" /etc/subuid || usermod --add-subuids 200000-265535 "$user"
grep -q "^$user:" /etc/subgid || usermod --add-subgids 200000-265535 "$user"

# Short: unix socket paths are limited to 107 bytes. Readable by the user.
work="$(mktemp -d /tmp/ds-rootless.XXXXXX)"
chmod 755 "$work"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # runuser does not pass SIGTERM on to its child: end the user's processes
  # that belong to this run (their command lines name $work) as well.
  pkill -TERM -u "$user" -f "$work" 2>/dev/null || true
  for pid in "${pids[@]}"; do
    timeout 20 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    pgrep -u "$user" -f "$work" >/dev/null 2>&1 || break
    sleep 0.2
  done
  pkill -KILL -u "$user" -f "$work" 2>/dev/null || true
  # The user's storage holds files owned by subordinate IDs: remove as the user.
  as_user podman unshare rm -rf "$work/home" >/dev/null 2>&1 || true
  # Rootless Podman keeps a pause process per runtime dir to hold its user
  # namespace (`podman unshare` above needs it too); it goes with the dir.
  local pause
  for pause in "$runtime"/libpod/tmp/pause.pid "$runtime"/libpod/pause.pid; do
    if [ -r "$pause" ]; then kill -KILL "$(cat "$pause")" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/run" "$work/home" "$work/ctx"
chown "$user" "$work/run" "$work/home" "$work/ctx"
chmod 700 "$work/run"
runtime="$work/run"
# as_user CMD...: CMD as the test user, in its private runtime dir and home.
as_user() {
  timeout 300 runuser -u "$user" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" \
    XDG_RUNTIME_DIR="$runtime" "$@"
}
mkdir -p "$work/home/.config/containers"
printf '[storage]\ndriver = "vfs"\n' >"$work/home/.config/containers/storage.conf"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
  >"$work/home/.config/containers/containers.conf"
chown -R "$user" "$work/home"

checks=0
failures=0
check() {
  local what="$1"
  shift
  checks=$((checks + 1))
  if "$@"; then echo "ok     $what"; else
    echo "FAILED $what"
    failures=$((failures + 1))
  fi
}

# ---- the user's Podman API service, at the rootless default path -----------
as_user mkdir -p "$runtime/podman"
socket="$runtime/podman/podman.sock"
runuser -u "$user" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home" \
  XDG_RUNTIME_DIR="$runtime" podman system service --time=0 "unix://$socket" \
  >"$work/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  [ -S "$socket" ] && as_user podman --url "unix://$socket" version >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || {
    cat "$work/service.log" >&2
    fail "podman system service exited"
  }
  sleep 0.3
done
[ -S "$socket" ] || fail "no socket at $socket within 60 s"
rootless="$(as_user podman info --format '{{.Host.Security.Rootless}}')"
[ "$rootless" = true ] || fail "podman as $user is not rootless ($rootless)"
echo "rootless podman $(podman --version | awk '{print $3}') at $socket"

# ---- images, from files -------------------------------------------------------
mkdir -p "$work/ctx/base/bin"
cp "$(command -v busybox)" "$work/ctx/base/bin/busybox"
python3 - "$work/ctx" <<'PY'
import os, random, sys
root = sys.argv[1]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
for version in (1, 2):
    d = os.path.join(root, "v%d" % version)
    data = bytearray(random.Random(1).randbytes(3 << 20))
    if version == 2:
        data[5000:5010] = b"version 2!"
    write(os.path.join(d, "app", "data.bin"), bytes(data))
    for i in range(30):
        write(os.path.join(d, "app", "src", "f%d.txt" % i), (("line %d v%d\n" % (i, version)) * 50).encode())
    write(os.path.join(d, "Dockerfile"), b"FROM localhost/rl-base:1\nCOPY app /app\n")
PY
chown -R "$user" "$work/ctx"
tar -C "$work/ctx/base" -c . | runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$work/home" \
  XDG_RUNTIME_DIR="$runtime" podman import - rl-base:1 >/dev/null || fail "podman import"
for v in 1 2; do
  as_user podman build --network none -q -t "rlapp:$v" "$work/ctx/v$v" >/dev/null ||
    fail "podman build rlapp:$v"
  as_user podman save -q --format docker-archive -o "$work/ctx/rlapp-$v.tar" "rlapp:$v" ||
    fail "podman save rlapp:$v"
done
v2_id="$(as_user podman image inspect --format '{{.Id}}' rlapp:2)"
as_user podman rmi rlapp:2 >/dev/null
cp "$work/ctx/rlapp-1.tar" "$work/ctx/rlapp-2.tar" "$work/"

# ---- deltarecvd as the user, engine found by itself --------------------------
"$src/deploy/make-certs.sh" "$work/pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name build-1 >/dev/null
chown -R "$user" "$work/pki"
mkdir -p "$work/store" && chown "$user" "$work/store"
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$work/home" XDG_RUNTIME_DIR="$runtime" \
  "$deltarecvd" --listen 127.0.0.1:0 --cert "$work/pki/receiver.pem" --key "$work/pki/receiver.key" \
  --ca "$work/pki/ca.pem" --store "$work/store" --allow-client build-1 --log-level info \
  >"$work/receiver.log" 2>&1 &
pids+=($!)
port=
for _ in $(seq 150); do
  port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/receiver.log" | tail -1)"
  [ -n "$port" ] && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.2
done
[ -n "$port" ] || {
  cat "$work/receiver.log" >&2
  fail "deltarecvd did not listen"
}
check "deltarecvd found the rootless socket by itself" grep -q "engine unix://$socket" "$work/receiver.log"

timeout 300 "$deltasend" "docker-archive:$work/rlapp-2.tar" --to "127.0.0.1:$port" \
  --cert "$work/pki/sender-build-1.pem" --key "$work/pki/sender-build-1.key" --ca "$work/pki/ca.pem" \
  --cache-dir "$work/cache" --json >"$work/send.json" 2>"$work/send.err" || {
  cat "$work/send.err" "$work/receiver.log" >&2
  fail "deltasend to the rootless site"
}
result() { python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2]))' "$1" "$2"; }
site_id="$(as_user podman image inspect --format '{{.Id}}' rlapp:2 2>/dev/null || true)"
check "the rootless engine holds rlapp:2 under the build's Id" [ "sha256:${site_id#sha256:}" = "sha256:${v2_id#sha256:}" ]
check "deltasend reports that Id" [ "$(result "$work/send.json" 'r["image_id"]')" = "sha256:${v2_id#sha256:}" ]
wire="$(result "$work/send.json" 'r["socket_bytes_sent"] + r["socket_bytes_received"]')"
check "the session cost less than a tenth of the new layer ($wire bytes)" [ "$wire" -lt 400000 ]

# ---- bundle + apply as the user, without --engine ----------------------------
as_user podman rmi rlapp:2 >/dev/null
timeout 300 "$deltasend" bundle "docker-archive:$work/rlapp-2.tar" --base "docker-archive:$work/rlapp-1.tar" \
  -o "$work/rlapp-2.dsb" -q --cert "$work/pki/sender-build-1.pem" --key "$work/pki/sender-build-1.key" ||
  fail "deltasend bundle"
chmod 644 "$work/rlapp-2.dsb"
as_user "$deltarecvd" --config /dev/null --ca "$work/pki/ca.pem" apply "$work/rlapp-2.dsb" \
  >"$work/apply.out" 2>&1 || {
  cat "$work/apply.out" >&2
  fail "deltarecvd apply as $user"
}
site_id="$(as_user podman image inspect --format '{{.Id}}' rlapp:2 2>/dev/null || true)"
check "apply loaded rlapp:2 into the rootless engine with the build's Id" [ "sha256:${site_id#sha256:}" = "sha256:${v2_id#sha256:}" ]
check "apply named the rootless socket" grep -q "$socket" "$work/apply.out"

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
