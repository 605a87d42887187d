#!/usr/bin/env bash
# Pull mode over a thin link, against a real `docker pull` from the same
# registry through the same link (issue 15: "thin link, measured fairly").
#
#   bench/run-registry-thinlink-bench.sh [BUILD_DIR]     (BUILD_DIR defaults to build)
#
# Set-up (not timed): the link of scripts/thin-link.sh (2 Mbit/s down to the
# site namespace ds-site, 512 kbit/s up); Debian's docker-registry on the
# build side at 10.77.0.1:5000; the pair bench/pairs/$THIN_PAIR.sh (default
# deps-bump) built in a private build engine; OLD and NEW published with
# `deltasend publish` (OLD alone, then NEW with --base OLD); the site's
# private dockerd (in the namespace, --insecure-registry for that address)
# gets OLD by `docker pull` with the shaping lifted, so that Docker knows
# OLD's blobs and a later `docker pull NEW` skips the layers they share.
#
# Measured, each ending with NEW's image ID verified on the site engine:
#   docker pull  `docker pull REG/thin-PAIR:new` through the link: the
#                registry's gzip blobs of the layers the site lacks, then the
#                engine's own extraction;
#   pull mode    `deltarecvd pull REG/thin-PAIR:new`, in the namespace:
#                finds the delta, fetches it, rebuilds, verifies, loads; with a
#                cold store (the basis is exported from the engine into the
#                store first, included) and a warm one (an earlier round on
#                OLD, as a watching service does, kept OLD in the store);
#   push mode    `deltasend NEW --to` a deltarecvd service in the namespace
#                (TLS, started before the clock; its store is fresh, so it
#                exports its basis from the engine once, included);
#   floor        the engine's own load of NEW while it holds OLD (`docker
#                load` of NEW's archive, which skips the layers it has), plus
#                pull mode's bytes at the link rate.
# Bytes are the namespace interface's received bytes (/proc/net/dev of
# ds-site0), headers and TCP/TLS framing included.
# Prints a Markdown table and writes it to $BENCH_RESULTS/registry-thinlink-latest.md.
#
# Env: THIN_PAIR (default deps-bump); BENCH_RESULTS (default bench/results);
#      BENCH_WORKDIR (default /var/tmp/deltasync-regthin-work, removed at the end
#      unless BENCH_KEEP=1); DELTASYNC_ENGINE_ROOT (default /var/tmp/ds-regthin);
#      DELTASYNC_DOCKERD_STORAGE_DRIVER (default vfs; overlay2 is what
#      production hosts run, and extracts layers far faster than vfs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-regthin-work}"
results="${BENCH_RESULTS:-$repo/bench/results}"
pair="${THIN_PAIR:-deps-bump}"
export DELTASYNC_ENGINE_ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/ds-regthin}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
REG=10.77.0.1:5000
name="$REG/thin-$pair"
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$1" "${@:2}"; }
in_site() { nsenter --net=/run/netns/ds-site "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
rx_bytes() { in_site awk '$1 == "ds-site0:" { print $2 }' /proc/net/dev; }
die() {
  echo "run-registry-thinlink-bench: $*" >&2
  exit 1
}
for c in "$DOCKER" python3 ip tc nsenter docker-registry; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done
[ -x "$build_dir/sender/deltasend" ] && [ -x "$build_dir/receiver/deltarecvd" ] ||
  die "build deltasend and deltarecvd in $build_dir first"
deltasend="$build_dir/sender/deltasend"
deltarecvd="$build_dir/receiver/deltarecvd"

rm -rf "$work"
mkdir -p "$work" "$results"
registry_pid="" build_started=0 site_started=0
receiver_pid=""
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  [ -z "$receiver_pid" ] || kill "$receiver_pid" 2>/dev/null || true
  if [ "$site_started" = 1 ]; then scripts/test-engine.sh stop regthin-site >/dev/null 2>&1 || true; fi
  if [ "$build_started" = 1 ]; then scripts/test-engine.sh stop regthin-build >/dev/null 2>&1 || true; fi
  scripts/thin-link.sh down >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

scripts/thin-link.sh up >&2
engine="$(scripts/test-engine.sh start regthin-build)"
build_started=1
site="$(DELTASYNC_DOCKERD_EXTRA_ARGS="--insecure-registry $REG" in_site scripts/test-engine.sh start regthin-site)"
site_started=1
bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >&2
echo "== $pair: building the pair" >&2
read -r old new < <(bench/pairs/"$pair".sh "$engine" regthin- "$work/pair") || die "$pair: generator failed"
want="$(docker_h "$engine" image inspect -f '{{.Id}}' "$new")"

cat >"$work/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $REG
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://$REG/v2/')" 2>/dev/null && break
  sleep 0.1
done
echo "== $pair: publishing OLD, then NEW with a delta from OLD" >&2
"$deltasend" --engine "$engine" publish "$old" --registry "$name:old" --registry-insecure --unsigned -q
"$deltasend" --engine "$engine" publish "$new" --base "$old" --registry "$name:new" --registry-insecure \
  --unsigned --json >"$work/publish.json"

echo "== $pair: the site pulls OLD (link not shaped)" >&2
THIN_RATE_DOWN=10gbit THIN_RATE_UP=10gbit scripts/thin-link.sh up >/dev/null
in_site "$DOCKER" -H "$site" pull -q "$name:old" >/dev/null
scripts/thin-link.sh up >/dev/null
site_id() { docker_h "$site" image inspect -f '{{.Id}}' "$name:new" 2>/dev/null || echo missing; }

echo "== $pair: docker pull NEW over the link" >&2
rx0="$(rx_bytes)"
t0="$(now)"
in_site "$DOCKER" -H "$site" pull -q "$name:new" >/dev/null
pull_wall="$(since "$t0")"
pull_bytes=$(($(rx_bytes) - rx0))
[ "$(site_id)" = "$want" ] || die "docker pull: the site holds $(site_id), not $want"
docker_h "$site" image rm -f "$want" >/dev/null

# pull_mode NAME STORE: one `deltarecvd pull` of NEW; JSON, time and bytes in $work/NAME.*.
pull_mode() {
  local rx t
  rx="$(rx_bytes)"
  t="$(now)"
  in_site "$deltarecvd" --config /dev/null --engine "$site" --store "$2" --registry-insecure \
    pull "$name:new" --allow-unsigned --json >"$work/$1.json" 2>>"$work/pull.log"
  since "$t" >"$work/$1.wall"
  echo $(($(rx_bytes) - rx)) >"$work/$1.bytes"
  [ "$(site_id)" = "$want" ] || die "pull mode ($1): the site holds $(site_id), not $want"
  docker_h "$site" image rm -f "$want" >/dev/null
}
echo "== $pair: deltarecvd pull NEW over the link, cold store (the basis is exported)" >&2
pull_mode cold "$work/store-cold"
echo "== $pair: deltarecvd pull NEW, warm store (a round on OLD kept it in the store first)" >&2
in_site "$deltarecvd" --config /dev/null --engine "$site" --store "$work/store-warm" --registry-insecure \
  pull "$name:old" -q 2>>"$work/pull.log"
pull_mode warm "$work/store-warm"

echo "== $pair: deltasend NEW --to the site (push mode, the receiver already running)" >&2
bash deploy/make-certs.sh "$work/pki" --receiver-name thin-site --receiver-ip 10.77.0.2 \
  --sender-name build-1 >/dev/null
: >"$work/deltarecvd.log"
nsenter --net=/run/netns/ds-site "$deltarecvd" --config /dev/null --listen 10.77.0.2:7443 \
  --cert "$work/pki/receiver.pem" --key "$work/pki/receiver.key" --ca "$work/pki/ca.pem" \
  --store "$work/store-push" --engine "$site" --log-level info >>"$work/deltarecvd.log" 2>&1 &
receiver_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/deltarecvd.log" && break
  sleep 0.2
done
grep -q "listening on" "$work/deltarecvd.log" || die "deltarecvd did not start: $(tail -3 "$work/deltarecvd.log")"
rx="$(rx_bytes)"
t0="$(now)"
"$deltasend" "$new" --to 10.77.0.2:7443 --cert "$work/pki/sender-build-1.pem" \
  --key "$work/pki/sender-build-1.key" --ca "$work/pki/ca.pem" --engine "$engine" \
  --cache-dir "$work/cache-push" --json >"$work/push.json" ||
  die "deltasend --to failed; receiver log: $(tail -5 "$work/deltarecvd.log")"
since "$t0" >"$work/push.wall"
echo $(($(rx_bytes) - rx)) >"$work/push.bytes"
# push mode tags the image as the build host does ($new), not with the registry's name
push_id="$(docker_h "$site" image inspect -f '{{.Id}}' "$new" 2>/dev/null || echo missing)"
[ "$push_id" = "$want" ] || die "push mode: the site holds $push_id as $new, not $want"
kill "$receiver_pid" 2>/dev/null || true
wait "$receiver_pid" 2>/dev/null || true
docker_h "$site" image rm -f "$want" >/dev/null

echo "== $pair: floor: the engine's own load of NEW beside OLD" >&2
docker_h "$site" image inspect "$want" >/dev/null 2>&1 && die "floor: NEW is still on the site"
docker_h "$engine" save -o "$work/new.tar" "$new"
t0="$(now)"
docker_h "$site" load -q -i "$work/new.tar" >/dev/null
load_wall="$(since "$t0")"

python3 - "$work" "$pair" "$pull_wall" "$pull_bytes" "$load_wall" \
  "$results/registry-thinlink-latest.md" "${DELTASYNC_DOCKERD_STORAGE_DRIVER:-vfs}" <<'PY'
import json, sys
work, pair = sys.argv[1], sys.argv[2]
pull_wall, pull_bytes, load_wall = map(float, sys.argv[3:6])
out = sys.argv[6]
rate = 2e6 / 8
pub = json.load(open(f"{work}/publish.json"))
res = json.load(open(f"{work}/warm.json"))
runs = {n: (float(open(f"{work}/{n}.wall").read()), int(open(f"{work}/{n}.bytes").read())) for n in ("cold", "warm")}
mode_bytes = runs["warm"][1]
push_wall = float(open(f"{work}/push.wall").read())
push_bytes = int(open(f"{work}/push.bytes").read())
push_result = json.loads(open(f"{work}/push.json").read().strip().splitlines()[-1])  # the result event
push_mode = push_result.get("mode", "?")
floor = load_wall + mode_bytes / rate
mib = lambda b: "%.2f MiB" % (b / 1048576) if b >= 1048576 else "%.1f KiB" % (b / 1024)
lines = [
    f"Pair `{pair}`; link 2 Mbit/s down, 512 kbit/s up (tbf); registry on the build side; "
    f"delta {mib(pub['deltas'][0]['bundle_bytes'])} ({res['outcome']}, found by {res['delta_found_by']}).",
    "",
    "| method | bytes to the site | time to loaded | vs docker pull | vs floor |",
    "|---|---:|---:|---:|---:|",
    f"| docker pull (registry, gzip blobs of the missing layers) | {mib(pull_bytes)} | {pull_wall:.1f} s | 1.00x | {pull_wall / floor:.2f}x |",
] + [
    f"| deltarecvd pull (pull mode, {n} store) | {mib(b)} | {w:.1f} s | {pull_wall / w:.1f}x sooner | {w / floor:.2f}x |"
    for n, (w, b) in runs.items()
] + [
    f"| deltasend --to (push mode, {push_mode} basis, receiver running) | "
    f"{mib(push_bytes)} | {push_wall:.1f} s | {pull_wall / push_wall:.1f}x sooner | {push_wall / floor:.2f}x |",
] + [
    f"| floor: engine load of NEW beside OLD ({load_wall:.1f} s) + pull mode's bytes at 2 Mbit/s | {mib(mode_bytes)} | {floor:.1f} s | | 1.00x |",
]
driver = sys.argv[7]
lines[0] += f" Engines: dockerd 20.10, classic store, storage driver {driver}."
names = []
for n in ("cold", "warm"):
    for k in json.load(open(f"{work}/{n}.json")).get("phases", {}):
        if k not in names:
            names.append(k)
lines += ["", "Pull mode, seconds per step (`deltarecvd pull --json`, `phases`):", "",
          "| store | " + " | ".join(names) + " | total |",
          "|---|" + "---:|" * (len(names) + 1)]
for n in ("cold", "warm"):
    ph = json.load(open(f"{work}/{n}.json")).get("phases", {})
    lines.append(f"| {n} | " + " | ".join("%.2f" % ph[k] if k in ph else "" for k in names) +
                 f" | {runs[n][0]:.1f} |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
