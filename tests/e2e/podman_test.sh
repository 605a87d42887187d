#!/usr/bin/env bash
# deltasend and deltarecvd against Podman's Docker-compatible API socket.
#
#   podman_test.sh SOURCE_DIR DELTASEND DELTARECVD
#
# Starts two private rootful Podman API services (`podman system service`,
# each with its own --root/--runroot in a temp dir, vfs storage, cgroupfs,
# file events; no network, no registry): "build" (the sender's engine) and
# "site" (the receiver's). Images are made there from files only:
# scripts/make-base-image.sh imports the busybox base (through a podman-remote
# stand-in for the docker CLI), `podman build --network none` builds
# pmapp:1/2/3 on it (Podman names them localhost/pmapp:N, OCI configs), and
# the site gets pmapp:1, named dsapp:1 only, by `podman save | podman load`.
# Then:
#   - deltasend pmapp:2 --to a deltarecvd whose --engine is the site's socket:
#     LOCAL basis, then (target removed, a new store) REMOTE basis with
#     --no-local-basis;
#     each ends with the build engine's image ID and tags on the site: the
#     site skips the base layer it holds (placeholders in the archive), the
#     basis is the same repository (the site lists docker.io/library/dsapp:1,
#     reported as dsapp:1); sending again only confirms;
#   - deltasend status lists the image;
#   - deltasend diff, and deltasend bundle --base on the build engine;
#     deltarecvd apply on the site loads pmapp:3 with the build's image ID;
#   - a bundle whose base the site lacks loads nothing;
#   - no service at a Podman socket: the error names podman.socket.
# Every wait is bounded (service start 60 s, commands 300 s). Exits 77
# (CTest: skipped) only when podman is not installed; needs root (rootful
# Podman, as the other end-to-end tests need root for dockerd).
set -euo pipefail

usage="usage: podman_test.sh SOURCE_DIR DELTASEND DELTARECVD"
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

command -v podman >/dev/null 2>&1 || skip "podman is not installed (apt-get install podman)"
[ "$(id -u)" -eq 0 ] || fail "needs root (rootful podman system service)"
[ -x "$deltasend" ] || fail "no deltasend at $deltasend"
[ -x "$deltarecvd" ] || fail "no deltarecvd at $deltarecvd"
command -v python3 >/dev/null || fail "python3 missing"

started=$(date +%s)
# Short: unix socket paths are limited to 107 bytes.
work="$(mktemp -d /tmp/ds-podman.XXXXXX)"
pids=()
# Ends what we started (by pid) and removes the temp dir.
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

checks=0
failures=0
check() { # check DESCRIPTION COMMAND...
  local what="$1"
  shift
  checks=$((checks + 1))
  if "$@"; then
    echo "ok     $what"
  else
    echo "FAILED $what"
    failures=$((failures + 1))
  fi
}
run() { timeout 300 "$@"; }
# quiet COMMAND...: run, printing its output only when it fails.
quiet() {
  run "$@" >"$work/last.out" 2>&1 || {
    cat "$work/last.out" >&2
    return 1
  }
}

# ---- two private Podman API services ---------------------------------------
start_podman() { # start_podman NAME
  local dir="$work/$1"
  mkdir -p "$dir/tmp"
  # cgroupfs: no systemd needed; file events: no journald. Nothing else from
  # /etc/containers matters (no pulls, no containers run).
  printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >"$dir/containers.conf"
  # TMPDIR: Podman stages each POST /images/load upload and each export
  # there (default /var/tmp).
  CONTAINERS_CONF="$dir/containers.conf" TMPDIR="$dir/tmp" \
    podman --root "$dir/root" --runroot "$dir/run" --storage-driver vfs --tmpdir "$dir/libpod" \
    system service --time=0 "unix://$dir/podman.sock" >"$dir/service.log" 2>&1 &
  pids+=($!)
  local deadline=$(($(date +%s) + 60))
  until timeout 10 podman --url "unix://$dir/podman.sock" version >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || {
      cat "$dir/service.log" >&2
      fail "podman service $1 did not answer within 60 s"
    }
    kill -0 "${pids[-1]}" 2>/dev/null || {
      cat "$dir/service.log" >&2
      fail "podman service $1 exited"
    }
    sleep 0.3
  done
}
start_podman build
start_podman site
BUILD="unix://$work/build/podman.sock"
SITE="unix://$work/site/podman.sock"
pm() { # pm ENGINE ARGS...: the podman remote client on ENGINE
  local url="$1"
  shift
  timeout 300 podman --url "$url" "$@"
}
image_id() { pm "$1" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true; }
echo "podman $(podman --version | awk '{print $3}'): services up in $(($(date +%s) - started)) s"

# ---- images, from files only ------------------------------------------------
# make-base-image.sh speaks docker CLI; podman-remote takes the same commands.
cat >"$work/docker-cli" <<'EOF'
#!/bin/sh
[ "$1" = -H ] || exit 2
url="$2"
shift 2
exec timeout 300 podman --url "$url" "$@"
EOF
chmod +x "$work/docker-cli"
DELTASYNC_DOCKER_CLI="$work/docker-cli" run "$src/scripts/make-base-image.sh" "$BUILD" \
  deltasync-base:busybox

python3 - "$work/ctx" <<'PY'
import os, random, shutil, sys
root = sys.argv[1]
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
def tree(name, version):
    d = os.path.join(root, name)
    rng = random.Random(1)
    for i in range(3):
        data = bytearray(rng.randbytes(2 << 20))
        if version >= 2 and i == 1:
            data[1000:1005] = b"EDIT!"
        write(os.path.join(d, "app", f"large{i}.bin"), bytes(data))
    for i in range(50):
        write(os.path.join(d, "app", "src", f"f{i}.js"), (f"export const v = {i};\n" * 40).encode())
    if version >= 2:
        write(os.path.join(d, "app", "src", "f7.js"), b"export const v = 'seven';\n")
        write(os.path.join(d, "app", "new.bin"), random.Random(2).randbytes(1 << 20))
    if version >= 3:
        write(os.path.join(d, "app", "v3.txt"), b"three\n")
    write(os.path.join(d, "Dockerfile"), b"FROM deltasync-base:busybox\nCOPY app /app\n")
for v in (1, 2, 3):
    tree(f"v{v}", v)
PY
for v in 1 2 3; do
  pm "$BUILD" build --network none -q -t "pmapp:$v" "$work/ctx/v$v" >/dev/null
done
# Docker-style names too (Podman lists them as docker.io/library/dsapp:N).
# The site holds v1 under that name only.
pm "$BUILD" tag pmapp:1 docker.io/library/dsapp:1
pm "$BUILD" tag pmapp:2 docker.io/library/dsapp:2
pm "$BUILD" save --format docker-archive -o "$work/v1.tar" docker.io/library/dsapp:1
pm "$SITE" load -q -i "$work/v1.tar" >/dev/null
v2_id="$(image_id "$BUILD" pmapp:2)"
v3_id="$(image_id "$BUILD" pmapp:3)"
if [ -z "$v2_id" ] || [ -z "$v3_id" ]; then fail "the build engine lacks pmapp:2 or pmapp:3"; fi
echo "images built in $(($(date +%s) - started)) s: pmapp:2 = $v2_id"

# ---- deltarecvd on the site's socket ----------------------------------------
run "$src/deploy/make-certs.sh" "$work/pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name build-1 >/dev/null
receiver_pid=
port=
start_receiver() { # start_receiver STORE: deltarecvd on the site's engine; sets $port
  if [ -n "$receiver_pid" ]; then
    kill -TERM "$receiver_pid" 2>/dev/null || true
    timeout 30 tail --pid="$receiver_pid" -f /dev/null || kill -KILL "$receiver_pid" 2>/dev/null || true
  fi
  local log
  log="$work/receiver-$(basename "$1").log"
  "$deltarecvd" --listen 127.0.0.1:0 --cert "$work/pki/receiver.pem" --key "$work/pki/receiver.key" \
    --ca "$work/pki/ca.pem" --store "$1" --engine "$SITE" --allow-client build-1 \
    --log-level info >"$log" 2>&1 &
  receiver_pid=$!
  pids+=("$receiver_pid")
  ln -sf "$log" "$work/receiver.log"
  port=
  for _ in $(seq 150); do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)"
    [ -n "$port" ] && return 0
    kill -0 "$receiver_pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$log" >&2
  fail "deltarecvd did not listen within 30 s"
}
start_receiver "$work/store-local"

send() { # send OUT.json ARGS...: deltasend pmapp:2 --to the site --json
  local out="$1"
  shift
  run "$deltasend" pmapp:2 --to "127.0.0.1:$port" --cert "$work/pki/sender-build-1.pem" \
    --key "$work/pki/sender-build-1.key" --ca "$work/pki/ca.pem" --engine "$BUILD" \
    --cache-dir "$work/cache" --json "$@" >"$out" 2>"$out.err" || {
    cat "$out.err" >&2
    tail -20 "$work/receiver.log" >&2
    return 1
  }
}
# result FILE EXPR: evaluates a Python expression on the last JSON line (r).
result() {
  python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2]))' "$1" "$2"
}
is() { [ "$1" = "$2" ] || {
  echo "       got '$1', expected '$2'"
  return 1
}; }

check "deltasend pmapp:2 to the Podman site (LOCAL basis)" send "$work/local.json"
check "  mode local" is "$(result "$work/local.json" 'r["mode"]')" local
# The site lists docker.io/library/dsapp:1: the same repository as dsapp:2.
check "  basis of the same repository, in Docker's form" \
  is "$(result "$work/local.json" 'r["basis"]')" dsapp:1
check "  site has pmapp:2 with the build's image ID" is "$(image_id "$SITE" localhost/pmapp:2)" "$v2_id"
check "  and dsapp:2 (docker.io/library/ name)" is "$(image_id "$SITE" docker.io/library/dsapp:2)" "$v2_id"
check "  only the missing layer was sent" is "$(result "$work/local.json" 'r["layers_sent"]')" 1
# Sent short ("dsapp:2"), Podman would have named it localhost/dsapp:2.
check "  and no other name" is "$(pm "$SITE" image inspect --format '{{join .RepoTags " "}}' \
  localhost/pmapp:2 | tr ' ' '\n' | sort | tr '\n' ' ')" "docker.io/library/dsapp:2 localhost/pmapp:2 "

# A new store: the first one holds the layer, which would need no basis.
pm "$SITE" rmi localhost/pmapp:2 docker.io/library/dsapp:2 >/dev/null || true
start_receiver "$work/store-remote"
check "deltasend --no-local-basis (REMOTE basis)" send "$work/remote.json" --no-local-basis
check "  mode remote" is "$(result "$work/remote.json" 'r["mode"]')" remote
check "  site has pmapp:2 with the build's image ID" is "$(image_id "$SITE" localhost/pmapp:2)" "$v2_id"

check "sending again" send "$work/again.json"
check "  already loaded" is "$(result "$work/again.json" 'r["already_loaded"]')" True
check "  costs under 64 KiB" [ "$(result "$work/again.json" 'r["socket_bytes_sent"] + r["socket_bytes_received"]')" -lt 65536 ]

status_lists() {
  run "$deltasend" status --to "127.0.0.1:$port" --cert "$work/pki/sender-build-1.pem" \
    --key "$work/pki/sender-build-1.key" --ca "$work/pki/ca.pem" >"$work/status.txt" 2>&1 &&
    grep -q "localhost/pmapp:2" "$work/status.txt" && grep -q "dsapp:2" "$work/status.txt"
}
check "deltasend status lists the site's images" status_lists

# ---- diff and bundles ---------------------------------------------------------
diff_finds() {
  run "$deltasend" --engine "$BUILD" diff pmapp:2 pmapp:3 >"$work/diff.txt" 2>&1 &&
    grep -q "/app/v3.txt" "$work/diff.txt"
}
check "deltasend diff on the build engine" diff_finds
check "deltasend bundle pmapp:3 --base pmapp:1 (signed by build-1)" quiet "$deltasend" --engine "$BUILD" \
  bundle pmapp:3 --base pmapp:1 -o "$work/v3.dsb" --cert "$work/pki/sender-build-1.pem" \
  --key "$work/pki/sender-build-1.key"
check "deltarecvd apply on the Podman site" quiet "$deltarecvd" --config /dev/null --engine "$SITE" \
  --ca "$work/pki/ca.pem" --allow-client build-1 apply "$work/v3.dsb"
check "  site has pmapp:3 with the build's image ID" is "$(image_id "$SITE" localhost/pmapp:3)" "$v3_id"

# A site without the base: nothing is loaded.
pm "$SITE" rmi localhost/pmapp:3 >/dev/null || true
pm "$BUILD" save --format docker-archive -o "$work/base.tar" deltasync-base:busybox
start_podman empty
EMPTY="unix://$work/empty/podman.sock"
pm "$EMPTY" load -q -i "$work/base.tar" >/dev/null
refused() {
  ! run "$deltarecvd" --config /dev/null --engine "$EMPTY" --ca "$work/pki/ca.pem" apply "$work/v3.dsb" \
    >"$work/refused.txt" 2>&1 &&
    grep -q "base layers" "$work/refused.txt" && [ -z "$(image_id "$EMPTY" localhost/pmapp:3)" ]
}
check "a site lacking the base refuses the bundle, loads nothing" refused

# No service at a Podman socket: the error says what to start.
hint() {
  ! run "$deltasend" --engine "unix://$work/gone/podman.sock" diff pmapp:1 pmapp:2 \
    >"$work/gone.txt" 2>&1 && grep -q "podman.socket" "$work/gone.txt"
}
check "no Podman service: the error names podman.socket" hint

echo "podman_test: $(($(date +%s) - started)) s"
echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
