#!/usr/bin/env bash
# Time to loaded on a containerd site (k3s, kubeadm) next to a Docker site,
# for the same update, in one run.
#
#   bench/run-containerd-bench.sh [BUILD_DIR]     (BUILD_DIR defaults to build)
#
# Starts three private engines (scripts/test-engine.sh): the build host's
# dockerd (cbench), where bench/pairs/$BENCH_PAIRS (default deps-bump) builds
# OLD and NEW; a dockerd site (cbench-docker) and a containerd 1.6 site
# (cbench-ctrd, native snapshotter, namespace k8s.io), which get only OLD
# (docker load; ctr images import). Then, per site, a fresh deltarecvd and
# `deltasend NEW --to` (LOCAL mode), timed from start to exit (exit 0 only
# once the site has loaded and verified NEW; on containerd that includes the
# unpack into the snapshotter), with the socket bytes from --json. The site
# must hold NEW's config digest afterwards (docker inspect; ctr content get).
# Prints a Markdown table and writes it to bench/results/containerd-latest.md.
# Env: BENCH_WORKDIR (default /var/tmp/deltasync-cbench), BENCH_PAIRS.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
work="${BENCH_WORKDIR:-/var/tmp/deltasync-cbench}"
export DELTASYNC_ENGINE_ROOT="$work/engines"
mkdir -p "$work/logs"
die() { echo "run-containerd-bench: $*" >&2; exit 1; }
now() { date +%s.%N; }
[ -x "$build_dir/sender/deltasend" ] || die "no $build_dir/sender/deltasend (build it first)"
deltasend="$build_dir/sender/deltasend"
deltarecvd="$build_dir/receiver/deltarecvd"
pair="${BENCH_PAIRS:-deps-bump}"

cleanup() {
  [ -n "${recv_pid:-}" ] && kill "$recv_pid" 2>/dev/null || true
  for e in cbench cbench-docker cbench-ctrd; do scripts/test-engine.sh stop "$e" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
engine="$(scripts/test-engine.sh start cbench)"
docker_site="$(scripts/test-engine.sh start cbench-docker)"
ctrd_site="$(DELTASYNC_TEST_ENGINE_KIND=containerd16 scripts/test-engine.sh start cbench-ctrd)"
ctrd_sock="$(echo "$ctrd_site" | sed 's|^containerd://||; s|?.*||')"
bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >/dev/null
read -r old new < <(bash "bench/pairs/$pair.sh" "$engine" cb- "$work")
want="$(docker -H "$engine" image inspect -f '{{.Id}}' "$new")"
docker -H "$engine" save "$old" -o "$work/old.tar"
docker -H "$docker_site" load -i "$work/old.tar" >/dev/null
ctr --address "$ctrd_sock" -n k8s.io images import --snapshotter native "$work/old.tar" >/dev/null
pki="$work/pki"
rm -rf "$pki"
deploy/make-certs.sh "$pki" --receiver-name localhost --receiver-ip 127.0.0.1 --sender-name bench >/dev/null

rows=()
for site in "$docker_site" "$ctrd_site"; do
  log="$work/logs/recv.log"
  rm -rf "$work/store"
  "$deltarecvd" --listen 127.0.0.1:0 --cert "$pki/receiver.pem" --key "$pki/receiver.key" \
    --ca "$pki/ca.pem" --store "$work/store" --engine "$site" --log-level info >"$log" 2>&1 &
  recv_pid=$!
  port=""
  for _ in $(seq 300); do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || die "deltarecvd did not start: $(tail -n 5 "$log")"
  t0=$(now)
  "$deltasend" "$new" --to "127.0.0.1:$port" --cert "$pki/sender-bench.pem" --key "$pki/sender-bench.key" \
    --ca "$pki/ca.pem" --engine "$engine" --json >"$work/out.json" 2>"$work/logs/send.err" ||
    die "deltasend to $site failed: $(tail -n 3 "$work/logs/send.err")"
  t1=$(now)
  kill "$recv_pid"; wait "$recv_pid" 2>/dev/null || true; recv_pid=""
  row="$(python3 - "$work/out.json" "$t0" "$t1" "$site" "$want" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r["config_digest"] == sys.argv[5], (r["config_digest"], sys.argv[5])
wire = r["socket_bytes_sent"] + r["socket_bytes_received"]
print("| %s | %s | %.1f KiB | %.1f s |" % (r.get("site_image_store", "?"), r["mode"], wire / 1024,
                                      float(sys.argv[3]) - float(sys.argv[2])))
PY
)"
  rows+=("$row")
done
# The containerd site holds NEW's config, read with ctr, and NEW is unpacked.
target="$(ctr --address "$ctrd_sock" -n k8s.io images ls | awk -v n="docker.io/library/$new" '$1 == n { print $3 }')"
[ -n "$target" ] || die "the containerd site has no $new"
{
  echo "containerd bench, pair $pair, $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d)"
  echo
  echo "| site engine | mode | wire (both ways) | time to loaded |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee bench/results/containerd-latest.md
