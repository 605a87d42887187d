#!/usr/bin/env bash
# Fleet scale for pull mode (issue 15): many pull-mode receivers against one
# registry. One encode per basis on the build host; the registry serves the
# delta to each receiver once; its total egress against as many full pulls.
#
#   bench/run-fleet-bench.sh [BUILD_DIR]      (BUILD_DIR defaults to build; root)
#
# Set-up (not measured): the pair bench/pairs/$FLEET_PAIR.sh (default
# deps-bump) built in a private build engine; Debian's docker-registry
# (distribution 2.8) on loopback with its access log on; OLD published
# plainly, NEW with `deltasend publish --base OLD` (its encode count and time
# are read from the publish JSON); FLEET_ENGINES private site dockerds
# (default 5), each holding OLD by `docker pull` from that registry.
#
# Measured, from the registry's own access log (status and body bytes of
# every request, so HTTP headers are not in it; plain HTTP, no TLS framing):
#   pull mode    FLEET_SITES (default 50) receivers, each its own
#                `deltarecvd pull REG/fleet-PAIR:new` process with its own
#                fresh store (so each exports OLD from its engine itself and
#                fetches the delta itself: nothing is shared but the engine).
#                The sites share the engines in turn: FLEET_ENGINES run at
#                once, one per engine; after each site the engine's NEW is
#                removed again (`docker rmi`, OLD stays) so the next site on
#                that engine starts from OLD. Every site must end with NEW's
#                image ID.
#   full pulls   the same number of real `docker pull REG/fleet-PAIR:new` into
#                the same engines holding OLD (the layers they lack, as the
#                registry's gzip blobs), removed again after each.
# Prints a Markdown table and writes it to $BENCH_RESULTS/fleet-latest.md.
#
# Env: FLEET_PAIR, FLEET_SITES, FLEET_ENGINES, FLEET_FULL_PULLS (default
#      FLEET_SITES; 0 leaves the full pulls out), FLEET_PORT (default 5057),
#      BENCH_RESULTS (default bench/results), BENCH_WORKDIR (default
#      /var/tmp/deltasync-fleet-work, removed at the end unless BENCH_KEEP=1),
#      DELTASYNC_ENGINE_ROOT (default /var/tmp/ds-fleet).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-fleet-work}"
results="${BENCH_RESULTS:-$repo/bench/results}"
pair="${FLEET_PAIR:-deps-bump}"
sites="${FLEET_SITES:-50}"
engines="${FLEET_ENGINES:-5}"
full_pulls="${FLEET_FULL_PULLS:-$sites}"
port="${FLEET_PORT:-5057}"
export DELTASYNC_ENGINE_ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/ds-fleet}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
REG="127.0.0.1:$port"
name="$REG/fleet-$pair"
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$1" "${@:2}"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
die() {
  echo "run-fleet-bench: $*" >&2
  exit 1
}
for c in "$DOCKER" python3 docker-registry; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done
[ -x "$build_dir/sender/deltasend" ] && [ -x "$build_dir/receiver/deltarecvd" ] ||
  die "build deltasend and deltarecvd in $build_dir first"
[ "$sites" -ge 1 ] && [ "$engines" -ge 1 ] || die "FLEET_SITES and FLEET_ENGINES must be at least 1"
deltasend="$build_dir/sender/deltasend"
deltarecvd="$build_dir/receiver/deltarecvd"

rm -rf "$work"
mkdir -p "$work" "$results"
registry_pid=""
started_engines=()
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  for e in "${started_engines[@]}"; do scripts/test-engine.sh stop "$e" >/dev/null 2>&1 || true; done
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

build="$(scripts/test-engine.sh start fleet-build)"
started_engines+=(fleet-build)
site_engines=()
for e in $(seq 1 "$engines"); do
  site_engines+=("$(scripts/test-engine.sh start "fleet-site-$e")")
  started_engines+=("fleet-site-$e")
done
bash scripts/make-base-image.sh "$build" deltasync-base:busybox >&2
echo "== $pair: building the pair" >&2
read -r old new < <(bench/pairs/"$pair".sh "$build" fleet- "$work/pair") || die "$pair: generator failed"
want="$(docker_h "$build" image inspect -f '{{.Id}}' "$new")"

cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  accesslog:
    disabled: false
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
"$deltasend" --engine "$build" publish "$old" --registry "$name:old" --registry-insecure --unsigned -q
t0="$(now)"
"$deltasend" --engine "$build" publish "$new" --base "$old" --registry "$name:new" --registry-insecure \
  --unsigned --json >"$work/publish.json"
publish_wall="$(since "$t0")"

echo "== $pair: $engines site engines pull OLD" >&2
for s in "${site_engines[@]}"; do docker_h "$s" pull -q "$name:old" >/dev/null; done
site_id() { docker_h "$1" image inspect -f '{{.Id}}' "$name:new" 2>/dev/null || echo missing; }
log_mark() { wc -l <"$work/registry.log"; }

# run_wave KIND: sites 1..N spread over the engines, one at a time per engine.
# KIND pull: `deltarecvd pull` with store $work/store-I; KIND docker: docker pull.
run_wave() {
  local kind="$1" count="$2" e pids=()
  for e in $(seq 1 "$engines"); do
    (
      local s="${site_engines[$((e - 1))]}" i t
      for ((i = e; i <= count; i += engines)); do
        t="$(now)"
        if [ "$kind" = pull ]; then
          "$deltarecvd" --config /dev/null --engine "$s" --store "$work/store-$i" --registry-insecure \
            pull "$name:new" --allow-unsigned --json >"$work/site-$i.json" 2>>"$work/pull-$i.log" ||
            die "site $i: deltarecvd pull failed (see $work/pull-$i.log)"
        else
          docker_h "$s" pull -q "$name:new" >/dev/null || die "site $i: docker pull failed"
        fi
        since "$t" >"$work/$kind-$i.wall"
        [ "$(site_id "$s")" = "$want" ] || die "$kind, site $i: engine $e holds $(site_id "$s"), not $want"
        docker_h "$s" image rm -f "$want" >/dev/null
        [ "$(docker_h "$s" image inspect -f '{{.Id}}' "$name:old" 2>/dev/null)" != "" ] ||
          die "$kind, site $i: OLD is gone from engine $e"
        rm -rf "$work/store-$i"
      done
    ) &
    pids+=($!)
  done
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  [ "$failed" = 0 ] || die "$kind wave failed"
}

echo "== $pair: $sites pull-mode receivers on $engines engines" >&2
mark0="$(log_mark)"
t0="$(now)"
run_wave pull "$sites"
pull_wave_wall="$(since "$t0")"
mark1="$(log_mark)"
if [ "$full_pulls" -gt 0 ]; then
  echo "== $pair: $full_pulls docker pulls of NEW on the same engines" >&2
  t0="$(now)"
  run_wave docker "$full_pulls"
  docker_wave_wall="$(since "$t0")"
else
  docker_wave_wall=0
fi
mark2="$(log_mark)"

python3 - "$work" "$pair" "$sites" "$engines" "$full_pulls" "$mark0" "$mark1" "$mark2" \
  "$publish_wall" "$pull_wave_wall" "$docker_wave_wall" "$results/fleet-latest.md" <<'PY'
import collections, json, re, sys
(work, pair, sites, engines, full_pulls, m0, m1, m2, publish_wall, pull_wall, docker_wall,
 out) = sys.argv[1:]
sites, engines, full_pulls, m0, m1, m2 = map(int, (sites, engines, full_pulls, m0, m1, m2))
lines = open(f"{work}/registry.log").read().splitlines()
access = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+) (\d+|-)')
def tally(chunk):
    t = {"requests": 0, "bytes": 0, "blobs": collections.Counter(), "blob_bytes": collections.Counter(),
         "manifest_bytes": 0, "statuses": collections.Counter()}
    for line in chunk:
        m = access.search(line)
        if not m:
            continue
        method, uri, status, size = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        size = 0 if size == "-" else int(size)
        t["requests"] += 1
        t["bytes"] += size
        t["statuses"][status] += 1
        if "/blobs/sha256:" in uri and method == "GET":
            d = uri.rsplit("/", 1)[1]
            t["blobs"][d] += 1
            t["blob_bytes"][d] += size
        elif "/manifests/" in uri:
            t["manifest_bytes"] += size
    return t
pull, full = tally(lines[m0:m1]), tally(lines[m1:m2])
pub = json.load(open(f"{work}/publish.json"))
deltas = pub["deltas"]
delta = deltas[0]
parts = set(delta["part_digests"])
reports = [json.load(open(f"{work}/site-{i}.json")) for i in range(1, sites + 1)]
outcomes = collections.Counter(r["outcome"] for r in reports)
fetched = [r["bytes_fetched"] for r in reports]
walls = sorted(float(open(f"{work}/pull-{i}.wall").read()) for i in range(1, sites + 1))
docker_walls = sorted(float(open(f"{work}/docker-{i}.wall").read()) for i in range(1, full_pulls + 1))
part_serves = collections.Counter()
for d, n in pull["blobs"].items():
    if d in parts:
        part_serves[d] = n
def mib(b):
    return "%.2f MiB" % (b / 1048576) if b >= 1048576 else "%.1f KiB" % (b / 1024)
def median(v):
    return v[len(v) // 2] if v else 0
rows = [
    "| method | sites | registry egress (bodies) | per site | requests | blob GETs (2xx, incl. Range) | wave wall time |",
    "|---|---:|---:|---:|---:|---:|---:|",
    f"| deltarecvd pull (pull mode, delta from OLD) | {sites} | {mib(pull['bytes'])} | {mib(pull['bytes'] / sites)} | "
    f"{pull['requests']} | {sum(pull['blobs'].values())} | {float(pull_wall):.0f} s |",
]
if full_pulls:
    rows.append(
        f"| docker pull (full pull of the missing layers) | {full_pulls} | {mib(full['bytes'])} | "
        f"{mib(full['bytes'] / full_pulls)} | {full['requests']} | {sum(full['blobs'].values())} | {float(docker_wall):.0f} s |")
text = "\n".join([
    f"Pair `{pair}`: {sites} pull-mode receivers (own process, own fresh store) on {engines} site engines, "
    f"one registry (distribution 2.8, loopback).",
    "",
] + rows + [
    "",
    f"- Build host: {len(deltas)} encode(s) for {len(deltas)} basis (publish of NEW {float(publish_wall):.1f} s); "
    f"delta {mib(delta['bundle_bytes'])} in {len(parts) or '?'} part(s).",
    f"- Outcomes: {dict(outcomes)}; delta parts served {sorted(part_serves.values()) or 'n/a'} time(s) each "
    f"(one per receiver is {sites}); bytes fetched per receiver: min {min(fetched)}, max {max(fetched)}.",
    f"- Pull-mode egress against the full pulls: "
    + (f"{full['bytes'] * sites / full_pulls / max(pull['bytes'], 1):.1f}x less (per site)" if full_pulls else "n/a")
    + f"; time to loaded per receiver (engine shared in turn, {engines} at once on this machine): "
      f"median {median(walls):.1f} s, max {walls[-1]:.1f} s"
    + (f"; docker pull median {median(docker_walls):.1f} s, max {docker_walls[-1]:.1f} s." if docker_walls else "."),
    "",
])
open(out, "w").write(text)
print(text)
PY
