#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer +
# UndefinedBehaviorSanitizer) in their own build directory, makes the seed
# corpora from real data, runs each target for FUZZ_SECONDS and prints a
# summary. Exits nonzero if any target found a crash, a sanitizer report, a
# timeout, an out-of-memory or a broken promise. docs/fuzzing.md.
#
#   scripts/fuzz.sh                      every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh tar_split layer_stream
#   scripts/fuzz.sh --list               the target names
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_BUILD_DIR   clang build directory (default /var/tmp/deltasync-fuzz-build)
#   FUZZ_WORK_DIR    corpora, findings, logs (default $FUZZ_BUILD_DIR/fuzz-work); the
#                    corpus of each target grows across runs, findings are kept
#   FUZZ_BUILD_JOBS  parallel compile jobs (default: nproc)
#   FUZZ_JOBS        processes per target (default 1; more runs libFuzzer -fork=N)
#   FUZZ_ARGS        extra libFuzzer arguments
#
# Findings: $FUZZ_WORK_DIR/findings/<target>/crash-* (timeout-*, oom-*,
# leak-*); reproduce one with  $FUZZ_BUILD_DIR/tests/fuzz/fuzz_<target> FILE,
# minimize with  ... -minimize_crash=1 -runs=10000 FILE, then add it to
# tests/fuzz/regressions/<target>/ (replayed by ctest -L fuzz-smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
src="$(pwd)"

# Target names and their -max_len (bytes); seeds are kept below these.
targets=(session_frame tar_split layer_stream block_delta bundle_reader archive_reader index_codec)
declare -A max_len=(
  [session_frame]=16384
  [tar_split]=65536
  [layer_stream]=65536
  [block_delta]=65536
  [bundle_reader]=65536
  [archive_reader]=131072
  [index_codec]=32768
)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
selected=("$@")
if [[ ${#selected[@]} -eq 0 ]]; then selected=("${targets[@]}"); fi
for t in "${selected[@]}"; do
  if [[ -z "${max_len[$t]:-}" ]]; then
    echo "fuzz.sh: unknown target '$t' (scripts/fuzz.sh --list)" >&2
    exit 2
  fi
done

seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-/var/tmp/deltasync-fuzz-build}"
work="${FUZZ_WORK_DIR:-$build/fuzz-work}"
build_jobs="${FUZZ_BUILD_JOBS:-$(nproc)}"
jobs="${FUZZ_JOBS:-1}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

command -v clang++ >/dev/null || {
  echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2
  exit 2
}

echo "== configure $build (clang, ASan + UBSan + libFuzzer)"
CC=clang CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDELTASYNC_FUZZ=ON -DDELTASYNC_TESTS=OFF -DDELTASYNC_BENCH=OFF >/dev/null
echo "== build"
cmake --build "$build" --parallel "$build_jobs" \
  --target fuzz_make_seeds $(printf 'fuzz_%s ' "${selected[@]}")

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

echo "== seeds"
"$build/tests/fuzz/fuzz_make_seeds" "$work/seeds"

mkdir -p "$work/logs"
declare -A runs rate corpus found status
failed=0
for t in "${selected[@]}"; do
  corpus_dir="$work/corpus/$t"
  findings="$work/findings/$t"
  regressions="$src/tests/fuzz/regressions/$t"
  log="$work/logs/$t.log"
  mkdir -p "$corpus_dir" "$findings" "$regressions"
  before=$(find "$findings" -maxdepth 1 -type f | wc -l)
  echo "== fuzz_$t for ${seconds}s (max_len ${max_len[$t]}; log $log)"
  parallel=()
  if [[ "$jobs" -gt 1 ]]; then parallel=(-fork="$jobs"); fi
  set +e
  # The first directory receives new inputs; seeds and regressions are read only.
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" \
    -timeout=30 -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$findings/" \
    "${parallel[@]}" "${extra_args[@]}" "$corpus_dir" "$work/seeds/$t" "$regressions" >"$log" 2>&1
  rc=$?
  set -e
  runs[$t]=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  rate[$t]=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  if [[ "${runs[$t]}" == 0 ]]; then  # -fork: the last "#N: ... exec/s R" line
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    runs[$t]=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
    rate[$t]=$(grep -oE 'exec/s:? [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo 0)
  fi
  # Corpus: libFuzzer's count of distinct inputs at the end (the directory
  # also keeps inputs that later ones replaced).
  corpus[$t]=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  [[ -n "${corpus[$t]}" ]] || corpus[$t]=$(find "$corpus_dir" -maxdepth 1 -type f | wc -l)
  after=$(find "$findings" -maxdepth 1 -type f | wc -l)
  found[$t]=$((after - before))
  if [[ $rc -ne 0 || ${found[$t]} -gt 0 ]]; then
    status[$t]="FAIL (exit $rc)"
    failed=1
    grep -m1 -E 'ERROR: |VIOLATION|runtime error' "$log" | sed 's/^/    /' || true
  else
    status[$t]=ok
  fi
done

echo
printf '%-16s %8s %12s %10s %8s %9s  %s\n' target seconds runs execs/s corpus findings status
for t in "${selected[@]}"; do
  printf '%-16s %8s %12s %10s %8s %9s  %s\n' "$t" "$seconds" "${runs[$t]}" "${rate[$t]}" \
    "${corpus[$t]}" "${found[$t]}" "${status[$t]}"
done
echo "findings: $work/findings/<target>/   logs: $work/logs/"
exit "$failed"
