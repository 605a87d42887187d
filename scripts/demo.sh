#!/usr/bin/env bash
# End-to-end demo on one machine: two private dockerd engines (a build
# host's and a site's), an app image at 1.0.0 and 2.0.0 built in the build
# host's engine, the site holding 1.0.0. A deltarecvd service runs for the
# site (mutual TLS on loopback, certificates from deploy/make-certs.sh);
# `deltasend app:2.0.0 --to` ships the update; then the same update goes as
# an offline bundle to a second tag. Image IDs must match each time.
#   scripts/demo.sh            set up, build, run the demo
#   KEEP_ENGINES=1 scripts/demo.sh   leave the engines running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

bash scripts/install-deps.sh
build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" --target deltasend deltarecvd
deltasend="$root/$build_dir/sender/deltasend"
deltarecvd="$root/$build_dir/receiver/deltarecvd"

export DELTASYNC_ENGINE_ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/deltasync-demo}"
cleanup() {
  if [ -z "${KEEP_ENGINES:-}" ]; then
    scripts/test-engine.sh stop build-host >/dev/null 2>&1 || true
    scripts/test-engine.sh stop site >/dev/null 2>&1 || true
  fi
  if [ -n "${receiver_pid:-}" ]; then kill "$receiver_pid" 2>/dev/null || true; wait "$receiver_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
work="$(mktemp -d /var/tmp/deltasync-demo-work.XXXXXX)"
trap cleanup EXIT

echo "== starting two private engines (build host and site)"
build_engine="$(scripts/test-engine.sh start build-host)"
site_engine="$(scripts/test-engine.sh start site)"
echo "   build host: $build_engine"
echo "   site:       $site_engine"
bash scripts/make-base-image.sh "$build_engine" deltasync-base:busybox >/dev/null
bash scripts/make-base-image.sh "$site_engine" deltasync-base:busybox >/dev/null

echo "== building app:1.0.0 and app:2.0.0 (COPY . /app: five large files and three small ones)"
mkdir -p "$work/v1/app"
for i in 1 2 3 4 5; do
  python3 -c "import random,sys; r=random.Random($i); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(4*1024*1024)))" \
    >"$work/v1/app/large$i.bin"
done
for i in 1 2 3; do printf 'small file %s\n' "$i" >"$work/v1/app/small$i.txt"; done
printf 'FROM deltasync-base:busybox\nCOPY app /app\n' >"$work/v1/Dockerfile"
cp -a "$work/v1" "$work/v2"
# 2.0.0: one large file edited in a few places, one small file changed, one removed, one added.
python3 - "$work/v2/app/large3.bin" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for off in (1000, 1_500_000, 3_000_000):
    b[off:off + 64] = b"edited-in-2.0.0!" * 4
open(p, "wb").write(b)
PY
printf 'small file 2, now changed\n' >"$work/v2/app/small2.txt"
rm "$work/v2/app/small3.txt"
printf 'a new file in 2.0.0\n' >"$work/v2/app/new.txt"
docker_cli="${DELTASYNC_DOCKER_CLI:-docker}"
build() {
  DOCKER_BUILDKIT=0 "$docker_cli" -H "$build_engine" build -q --network none -t "$1" "$2" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
}
build app:1.0.0 "$work/v1"
build app:2.0.0 "$work/v2"

echo "== the site gets app:1.0.0 the ordinary way (docker save | docker load)"
"$docker_cli" -H "$build_engine" save app:1.0.0 | "$docker_cli" -H "$site_engine" load -q

echo "== deltasend diff app:1.0.0 app:2.0.0"
"$deltasend" --engine "$build_engine" diff app:1.0.0 app:2.0.0

echo "== certificates for the site and the build host (deploy/make-certs.sh)"
bash deploy/make-certs.sh "$work/pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name build-host >/dev/null

echo "== deltarecvd on the site (listening on 127.0.0.1, store in $work/store)"
"$deltarecvd" --listen 127.0.0.1:0 --cert "$work/pki/receiver.pem" --key "$work/pki/receiver.key" \
  --ca "$work/pki/ca.pem" --store "$work/store" --engine "$site_engine" \
  --allow-client build-host >"$work/receiver.log" 2>&1 &
receiver_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/receiver.log" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/receiver.log" >&2; echo "demo: deltarecvd did not start" >&2; exit 1; }

echo "== deltasend app:2.0.0 --to 127.0.0.1:$port --dry-run --rate 2mbit   (what it would cost)"
"$deltasend" --engine "$build_engine" app:2.0.0 --to "127.0.0.1:$port" --dry-run --rate 2mbit \
  --cert "$work/pki/sender-build-host.pem" --key "$work/pki/sender-build-host.key" --ca "$work/pki/ca.pem"
echo "== deltasend app:2.0.0 --to 127.0.0.1:$port   (build host)"
"$deltasend" --engine "$build_engine" app:2.0.0 --to "127.0.0.1:$port" \
  --cert "$work/pki/sender-build-host.pem" --key "$work/pki/sender-build-host.key" --ca "$work/pki/ca.pem"
echo "   (receiver log:)"
sed 's/^/   /' "$work/receiver.log"
check_ids() {
  local sent_id site_id
  sent_id=$("$docker_cli" -H "$build_engine" image inspect -f '{{.Id}}' app:2.0.0)
  site_id=$("$docker_cli" -H "$site_engine" image inspect -f '{{.Id}}' "$1")
  echo "== image ID on the build host: $sent_id"
  echo "== image ID of $1 on the site: $site_id"
  [ "$sent_id" = "$site_id" ] || { echo "demo: image IDs differ" >&2; exit 1; }
}
check_ids app:2.0.0

echo "== the same update offline: remove app:2.0.0 from the site, then bundle + apply"
"$docker_cli" -H "$site_engine" rmi app:2.0.0 >/dev/null
echo "== deltasend bundle app:2.0.0 --base app:1.0.0 -o app-2.0.0.dsb   (build host; signed with its certificate)"
"$deltasend" --engine "$build_engine" bundle app:2.0.0 --base app:1.0.0 -o "$work/app-2.0.0.dsb" --effort max \
  --cert "$work/pki/sender-build-host.pem" --key "$work/pki/sender-build-host.key"

echo "== deltarecvd apply app-2.0.0.dsb   (site; trusts senders the CA vouches for, named build-host)"
"$deltarecvd" --config /dev/null --engine "$site_engine" --ca "$work/pki/ca.pem" --allow-client build-host \
  apply "$work/app-2.0.0.dsb"

check_ids app:2.0.0
echo "== demo finished: the site holds the same app:2.0.0, bit for bit"
