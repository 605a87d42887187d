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
#      BENCH_RESULTS (default bench/results): where the table and JSON go
#      BENCH_WORKDIR (default /var/tmp/deltasync-bench-work): scratch space,
#        a few GiB; emptied at the end unless BENCH_KEEP=1 (the .deb cache stays)
#      DELTASYNC_ENGINE_ROOT (see scripts/test-engine.sh), DELTASYNC_DOCKER_CLI
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-bench-work}"
results="${BENCH_RESULTS:-$repo/bench/results}"
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

rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo +dirty)"
# Copies of the binaries, so a rebuild of BUILD_DIR during the run (minutes)
# cannot mix two versions in one table.
mkdir -p "$work/bin"
deltasend="" deltarecvd=""
if [ -x "$build_dir/sender/deltasend" ]; then
  cp "$build_dir/sender/deltasend" "$work/bin/deltasend"
  deltasend="$work/bin/deltasend"
fi
if [ -x "$build_dir/receiver/deltarecvd" ]; then
  cp "$build_dir/receiver/deltarecvd" "$work/bin/deltarecvd"
  deltarecvd="$work/bin/deltarecvd"
fi
# The deltasync-gzip helpers go beside the copies (<bin>/../libexec/deltasync).
rm -rf "$work/libexec" && mkdir -p "$work/libexec"
if [ -d "$build_dir/libexec/deltasync" ]; then cp -r "$build_dir/libexec/deltasync" "$work/libexec/"; fi
has_bundle=0 has_apply=0
if [ -n "$deltasend" ] && "$deltasend" bundle --help >/dev/null 2>&1; then has_bundle=1; fi
if [ "$has_bundle" = 1 ] && [ -n "$deltarecvd" ] && "$deltarecvd" apply --help >/dev/null 2>&1; then has_apply=1; fi
if [ -n "$deltasend" ]; then export DELTASEND="$deltasend"; else unset DELTASEND; fi

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
mkdir -p "$results"
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
        "$deltasend" --engine "$engine" bundle "$new" --base "$old" -o "$f" --effort "$effort" -q --unsigned ||
        die "$pair: deltasend bundle --effort $effort failed"
      read -r secs rss < <(time_v "$work/$pair-$effort.time")
      b[$effort]="\"bundle_${effort}_bytes\": $(stat -c %s "$f"), \"bundle_${effort}_seconds\": $secs, \"bundle_${effort}_max_rss_kib\": $rss"
    done
    # Encode time against zstd's on equal terms: zstd reads layer tars that
    # are already on disk, so deltasend also reads `docker save` archives
    # (written just before, so both read from the page cache).
    echo "== $pair: deltasend bundle from docker-archive files (max, default)" >&2
    docker_h "$engine" save "$old" -o "$work/$pair-old.tar" || die "$pair: docker save $old failed"
    docker_h "$engine" save "$new" -o "$work/$pair-new.tar" || die "$pair: docker save $new failed"
    for effort in max default; do
      f="$work/$pair-$effort-archive.dsb"
      /usr/bin/time -v -o "$work/$pair-$effort-archive.time" \
        "$deltasend" bundle "docker-archive:$work/$pair-new.tar" --base "docker-archive:$work/$pair-old.tar" \
        -o "$f" --effort "$effort" -q --unsigned || die "$pair: deltasend bundle (archives) --effort $effort failed"
      read -r secs rss < <(time_v "$work/$pair-$effort-archive.time")
      b[$effort]+=", \"bundle_${effort}_archive_bytes\": $(stat -c %s "$f"), \"bundle_${effort}_archive_seconds\": $secs, \"bundle_${effort}_archive_max_rss_kib\": $rss"
      rm -f "$f"
    done
    rm -f "$work/$pair-old.tar" "$work/$pair-new.tar"
    extra="{${b[max]}, ${b[default]}}"
    if [ "$has_apply" = 1 ]; then
      echo "== $pair: deltarecvd apply (max bundle) in an engine holding only $old" >&2
      docker_h "$engine" save "$old" | docker_h "$site" load -q >/dev/null || die "$pair: cannot load $old into the site engine"
      /usr/bin/time -v -o "$work/$pair-apply.time" \
        "$deltarecvd" --engine "$site" apply "$work/$pair-max.dsb" -q --allow-unsigned ||
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
if [ "$has_bundle" = 1 ]; then
  python3 bench/baselines/wire-table.py "$jsonl" "$rev" >"$results/wire-latest.md"
else
  python3 bench/baselines/wire-table.py "$jsonl" >"$results/wire-latest.md"
fi
cat "$results/wire-latest.md"
