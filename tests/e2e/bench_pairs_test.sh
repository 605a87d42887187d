#!/usr/bin/env bash
# End-to-end check of the two registry-free bench pairs (app-zeros,
# app-random: the docker-diff-based-layers sample with zero-filled and with
# random large files). Runs bench/run-wire-bench.sh on them with its own
# private engines and work area, then asserts, from the figures it records:
#   - the max-effort bundle applied in an engine holding only OLD gave NEW's image ID;
#   - app-zeros: the bundle is at most 1 KiB;
#   - app-random: at most half of `zstd -19 --long=31 --patch-from`, and at
#     least 50x smaller than the registry pull;
#   - both: no more than zstd --patch-from, rsync, and changed-files + 1 KiB;
#     default effort within 1.25x of max.
# Byte counts only; times are reported by the benchmark, never asserted.
#   tests/e2e/bench_pairs_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1"
build="$2"
scratch="$(mktemp -d /var/tmp/deltasync-bench-test.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
export BENCH_PAIRS="app-zeros app-random"
export BENCH_WORKDIR="$scratch/work"
export BENCH_RESULTS="$scratch/results"
export DELTASYNC_ENGINE_ROOT="$scratch/engines"
cd "$src"
bash bench/run-wire-bench.sh "$build" >"$scratch/bench.log" 2>&1 || {
  tail -40 "$scratch/bench.log" >&2
  echo "bench_pairs_test: the benchmark failed" >&2
  exit 1
}
cat "$BENCH_RESULTS/wire-latest.md"
python3 - "$BENCH_RESULTS/wire-latest.jsonl" <<'PY'
import json, sys
failures = []
checks = 0
rows = {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    rows[row["pair"]] = row
def check(ok, what):
    global checks
    checks += 1
    print(("ok     " if ok else "FAILED ") + what)
    if not ok:
        failures.append(what)
for pair in ("app-zeros", "app-random"):
    r = rows.get(pair)
    check(r is not None, f"{pair}: measured")
    if r is None:
        continue
    b, d = r["bundle_max_bytes"], r["bundle_default_bytes"]
    check(r.get("apply_image_id_matches") is True, f"{pair}: applied image ID equals NEW's")
    check(b <= r["zstd_patch_bytes"], f"{pair}: {b} <= zstd --patch-from {r['zstd_patch_bytes']}")
    check(b <= r["rsync_bytes"], f"{pair}: {b} <= rsync {r['rsync_bytes']}")
    check(b <= r["changed_files_bytes"] + 1024, f"{pair}: {b} <= changed-files {r['changed_files_bytes']} + 1024")
    check(d <= 1.25 * b, f"{pair}: default {d} <= 1.25 x max {b}")
z = rows.get("app-zeros")
if z:
    check(z["bundle_max_bytes"] <= 1024, f"app-zeros: {z['bundle_max_bytes']} <= 1024")
a = rows.get("app-random")
if a:
    check(a["bundle_max_bytes"] <= a["zstd_patch_bytes"] / 2, f"app-random: {a['bundle_max_bytes']} <= zstd/2 {a['zstd_patch_bytes'] / 2}")
    check(a["bundle_max_bytes"] * 50 <= a["pull_bytes"], f"app-random: 50x smaller than the pull {a['pull_bytes']}")
print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
PY
