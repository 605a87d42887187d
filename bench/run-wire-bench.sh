#!/usr/bin/env bash
# Wire bytes per image pair: deltasync bundles against the baselines.
#
#   bench/run-wire-bench.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# Starts a private engine (scripts/test-engine.sh start bench), builds the
# registry-free base image, runs every pair generator bench/pairs/*.sh (each
# builds OLD and NEW in that engine), measures the baselines of each pair
# with bench/baselines/measure.sh and, when BUILD_DIR/sender/deltasend has
# the `bundle` command, writes a bundle at --effort max and --effort default
# (size, wall time and peak RSS from /usr/bin/time -v). When
# BUILD_DIR/receiver/deltarecvd has `apply`, the max bundle is also applied in
# a second private engine (bench-site) that holds only OLD (docker save |
# docker load), and the image ID it yields is checked against NEW's.
# Prints a Markdown table and writes it to bench/results/wire-latest.md (the
# raw figures, one JSON object per pair, to bench/results/wire-latest.jsonl).
# Stops the engines at the end.
#
# Env: BENCH_PAIRS="app-zeros deps-bump"  run only these pairs
#      BENCH_WORKDIR (default /var/tmp/deltasync-bench-work): scratch space,
#        a few GiB; emptied at the end unless BENCH_KEEP=1 (the .deb cache stays)
#      DELTASYNC_ENGINE_ROOT (see scripts/test-engine.sh), DELTASYNC_DOCKER_CLI
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-bench-work}"
results="$repo/bench/results"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$1" "${@:2}"; }

die() {
  echo "run-wire-bench: $*" >&2
  exit 1
}
for c in "$DOCKER" python3 gzip tar rsync zstd npm apt-get dpkg-deb; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found (run scripts/install-deps.sh)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"

deltasend="$build_dir/sender/deltasend"
deltarecvd="$build_dir/receiver/deltarecvd"
has_bundle=0 has_apply=0
if [ -x "$deltasend" ] && "$deltasend" bundle --help >/dev/null 2>&1; then has_bundle=1; fi
if [ "$has_bundle" = 1 ] && [ -x "$deltarecvd" ] && "$deltarecvd" apply --help >/dev/null 2>&1; then has_apply=1; fi
if [ -x "$deltasend" ]; then export DELTASEND="$deltasend"; else unset DELTASEND; fi

if [ -n "${BENCH_PAIRS:-}" ]; then
  read -r -a pairs <<<"$BENCH_PAIRS"
else
  pairs=()
  for f in bench/pairs/*.sh; do
    case "$(basename "$f")" in _*) continue ;; esac
    pairs+=("$(basename "$f" .sh)")
  done
fi

engine_started=0 site_started=0
cleanup() {
  [ "$site_started" = 1 ] && scripts/test-engine.sh stop bench-site >/dev/null 2>&1 || true
  [ "$engine_started" = 1 ] && scripts/test-engine.sh stop bench >/dev/null 2>&1 || true
  if [ -z "${BENCH_KEEP:-}" ] && [ -d "$work" ]; then
    find "$work" -mindepth 1 -maxdepth 1 ! -name .debs -exec rm -rf {} +
  fi
}
trap cleanup EXIT
mkdir -p "$work" "$results"
engine="$(scripts/test-engine.sh start bench)"
engine_started=1
if [ "$has_apply" = 1 ]; then
  site="$(scripts/test-engine.sh start bench-site)"
  site_started=1
fi
bash scripts/make-base-image.sh "$engine" deltasync-base:busybox

# time_v FILE: wall seconds and max RSS (KiB) from a /usr/bin/time -v report.
time_v() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1).split(":")
secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
print("%.2f %d" % (secs, rss))
PY
}

jsonl="$work/wire.jsonl"
: >"$jsonl"
for pair in "${pairs[@]}"; do
  gen="bench/pairs/$pair.sh"
  [ -x "$gen" ] || die "no generator $gen"
  echo "== $pair: building" >&2
  t0=$SECONDS
  tags="$("$gen" "$engine" bench- "$work")" || die "$pair: generator failed"
  read -r old new <<<"$tags"
  echo "== $pair: $old -> $new built in $((SECONDS - t0)) s; measuring baselines" >&2
  line="$(bench/baselines/measure.sh "$engine" "$old" "$new" "$work" "$pair")" ||
    die "$pair: measure.sh failed"
  extra="{}"
  if [ "$has_bundle" = 1 ]; then
    echo "== $pair: deltasend bundle (max, default)" >&2
    declare -A b=()
    for effort in max default; do
      f="$work/$pair-$effort.dsb"
      /usr/bin/time -v -o "$work/$pair-$effort.time" \
        "$deltasend" --engine "$engine" bundle "$new" --base "$old" -o "$f" --effort "$effort" -q ||
        die "$pair: deltasend bundle --effort $effort failed"
      read -r secs rss < <(time_v "$work/$pair-$effort.time")
      b[$effort]="\"bundle_${effort}_bytes\": $(stat -c %s "$f"), \"bundle_${effort}_seconds\": $secs, \"bundle_${effort}_max_rss_kib\": $rss"
    done
    extra="{${b[max]}, ${b[default]}}"
    if [ "$has_apply" = 1 ]; then
      echo "== $pair: deltarecvd apply (max bundle) in an engine holding only $old" >&2
      docker_h "$engine" save "$old" | docker_h "$site" load -q >/dev/null || die "$pair: cannot load $old into the site engine"
      /usr/bin/time -v -o "$work/$pair-apply.time" \
        "$deltarecvd" --engine "$site" apply "$work/$pair-max.dsb" -q ||
        die "$pair: deltarecvd apply failed"
      read -r secs rss < <(time_v "$work/$pair-apply.time")
      want="$(docker_h "$engine" image inspect -f '{{.Id}}' "$new")"
      got="$(docker_h "$site" image inspect -f '{{.Id}}' "$new" 2>/dev/null || echo missing)"
      same=false
      [ "$want" = "$got" ] && same=true
      [ "$same" = true ] || echo "run-wire-bench: $pair: applied image $got differs from $want" >&2
      extra="{${b[max]}, ${b[default]}, \"apply_seconds\": $secs, \"apply_max_rss_kib\": $rss, \"apply_image_id_matches\": $same}"
      docker_h "$site" image rm -f "$new" "$old" >/dev/null 2>&1 || true
    fi
    rm -f "$work/$pair-max.dsb" "$work/$pair-default.dsb"
    unset b
  fi
  python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a.update(json.loads(sys.argv[2])); print(json.dumps(a))' \
    "$line" "$extra" >>"$jsonl"
  # Free the engine's disk (vfs keeps a full copy per layer) and the scratch.
  docker_h "$engine" image rm -f "$new" "$old" >/dev/null 2>&1 || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "${work:?}/$pair"
  echo "== $pair: done in $((SECONDS - t0)) s" >&2
done

cp "$jsonl" "$results/wire-latest.jsonl"
python3 - "$jsonl" "$has_bundle" "$has_apply" >"$results/wire-latest.md" <<'PY'
import json, sys, subprocess, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
has_bundle, has_apply = sys.argv[2] == "1", sys.argv[3] == "1"

def b(n):
    if n < 10 * 1024:
        return "%s B" % format(n, ",")
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%s B (%.1f %s)" % (format(n, ","), n / div, unit)

def mib(kib):
    return "%d MiB" % round(kib / 1024)

def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except Exception:
        return "?"

print("Wire bytes per image pair, %s, %d cores; %s; %s; gzip %s." % (
    datetime.date.today().isoformat(), os.cpu_count(), ver(["zstd", "--version"]),
    ver(["rsync", "--version"]).replace("  ", " "), ver(["gzip", "--version"]).split()[-1]))
print()
print("| pair | new layer bytes | pull (gzip) | changed-files | rsync | zstd --patch-from (bytes, time, RSS) "
      "| deltasync --effort max (bytes, encode, RSS) | deltasync --effort default (bytes, encode, RSS) "
      "| apply of the max bundle (time, RSS) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    cells = [r["pair"], b(r["missing_layer_bytes"]), b(r["pull_bytes"]),
             "%s (%d files)" % (b(r["changed_files_bytes"]), r["added_files"] + r["changed_files"]),
             b(r["rsync_bytes"]),
             "%s, %.1f s, %s" % (b(r["zstd_patch_bytes"]), float(r["zstd_patch_seconds"]),
                                  mib(r["zstd_patch_max_rss_kib"]))]
    for e in ("max", "default"):
        if has_bundle and ("bundle_%s_bytes" % e) in r:
            cells.append("%s, %.1f s, %s" % (b(r["bundle_%s_bytes" % e]), r["bundle_%s_seconds" % e],
                                              mib(r["bundle_%s_max_rss_kib" % e])))
        else:
            cells.append("n/a")
    if has_apply and "apply_seconds" in r:
        cells.append("%.1f s, %s%s" % (r["apply_seconds"], mib(r["apply_max_rss_kib"]),
                                       "" if r["apply_image_id_matches"] else ", IMAGE ID DIFFERS"))
    else:
        cells.append("n/a")
    print("| " + " | ".join(cells) + " |")
PY
cat "$results/wire-latest.md"
