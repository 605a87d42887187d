#!/usr/bin/env bash
# Soak: one deltarecvd under many updates and many senders, watched for
# growth. On demand (takes 10-20 minutes); not part of CI.
#
#   bench/run-soak.sh [BUILD_DIR]        (BUILD_DIR defaults to build)
#
# Two private engines (scripts/test-engine.sh): soak-sender builds a chain of
# versions of one image (soak-app:0 .. soak-app:N; each edits a large file,
# changes and adds small ones) and, for the concurrent phase, soak-par-K:1
# and :2 for K = 1..4; soak-site starts with soak-app:0 and soak-par-K:1.
# One deltarecvd (store budget SOAK_BUDGET) serves all of it:
#   sequential  deltasend soak-app:i --to the site for i = 1..N, one after
#               the other (the site prunes soak-app:i-2, as an operator's
#               cleanup would, so its engine does not fill the disk);
#   concurrent  SOAK_ROUNDS rounds of SOAK_SENDERS senders at once: half send
#               distinct images (soak-par-K:2), half the same one (soak-par-1:2);
#               after each round the site's copies are removed again.
# After every transfer (sequential) and every round (concurrent) it samples
# the receiver's RSS (VmRSS), its open descriptors (/proc/PID/fd), its
# threads and the store's size on disk. Every send must exit 0 with the
# sender's image ID on the site. Prints a table and writes it to
# bench/results/soak-latest.md (samples: soak-latest.csv). Verdict "flat",
# per phase against that phase's own warm-up (8 sessions at once need more
# memory than one): sequential, the largest RSS of the last 10 updates is
# within 1.25x (+8 MiB) of updates 2-6; concurrent, the last round's RSS is
# within 1.25x (+8 MiB) of round 2's; descriptors and threads at idle are
# back to their values after the first update; the store stays within its
# budget (+10%).
#
# Env: SOAK_UPDATES (default 50), SOAK_SENDERS (8), SOAK_ROUNDS (6),
#      SOAK_BUDGET (default 256MiB, deltarecvd --store-budget),
#      SOAK_WORKDIR (default /var/tmp/deltasync-soak-work; emptied at the end
#      unless SOAK_KEEP=1), DELTASYNC_ENGINE_ROOT, DELTASYNC_DOCKER_CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
updates="${SOAK_UPDATES:-50}"
senders="${SOAK_SENDERS:-8}"
rounds="${SOAK_ROUNDS:-6}"
budget="${SOAK_BUDGET:-256MiB}"
work="${SOAK_WORKDIR:-/var/tmp/deltasync-soak-work}"
results="$repo/bench/results"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"

die() {
  echo "run-soak: $*" >&2
  exit 1
}
note() { echo "== $*" >&2; }
for c in "$DOCKER" python3 openssl timeout; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found (run scripts/install-deps.sh)"
done
[ -x "$build_dir/sender/deltasend" ] || die "no $build_dir/sender/deltasend (build it first)"
[ -x "$build_dir/receiver/deltarecvd" ] || die "no $build_dir/receiver/deltarecvd (build it first)"

bounded() { timeout --kill-after=10 600 "$@"; }
docker_h() { DOCKER_CLI_HINTS=false bounded "$DOCKER" -H "$1" "${@:2}"; }
image_id() { docker_h "$1" image inspect -f '{{.Id}}' "$2" 2>/dev/null || true; }

rm -rf "$work"
mkdir -p "$work/bin" "$results"
cp "$build_dir/sender/deltasend" "$build_dir/receiver/deltarecvd" "$work/bin/"
# The deltasync-gzip helpers go beside the copies (<bin>/../libexec/deltasync).
rm -rf "$work/libexec" && mkdir -p "$work/libexec"
if [ -d "$build_dir/libexec/deltasync" ]; then cp -r "$build_dir/libexec/deltasync" "$work/libexec/"; fi
deltasend="$work/bin/deltasend"
deltarecvd="$work/bin/deltarecvd"

recv_pid=""
cleanup() {
  if [ -n "$recv_pid" ]; then
    kill -TERM "$recv_pid" 2>/dev/null || true
    wait "$recv_pid" 2>/dev/null || true
  fi
  scripts/test-engine.sh stop soak-site >/dev/null 2>&1 || true
  scripts/test-engine.sh stop soak-sender >/dev/null 2>&1 || true
  [ -n "${SOAK_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

engine="$(scripts/test-engine.sh start soak-sender)"
site="$(scripts/test-engine.sh start soak-site)"
bounded bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >/dev/null

# ---- images ----
# gen DIR SEED SIZE_MIB: a context whose app/ holds 3 large files and 200
# small ones.
python3 - "$work" "$updates" <<'PY'
import os, random, sys
work, updates = sys.argv[1], int(sys.argv[2])
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
def context(name, seed):
    rng = random.Random(seed)
    d = os.path.join(work, "ctx", name)
    for i in range(3):
        write(f"{d}/app/large{i}.bin", rng.randbytes(4 << 20))
    for i in range(200):
        write(f"{d}/app/src/f{i}.js", (f"export const v{i} = {i};\n" * 40).encode())
    write(f"{d}/Dockerfile", b"FROM deltasync-base:busybox\nCOPY app /app\n")
    return d
context("app", 1)
for k in range(1, 5):
    context(f"par-{k}", 100 + k)
PY
build() { docker_h "$engine" build -q --network none -t "$2" "$1" >/dev/null || die "build $2 failed"; }
# edit DIR I: version I of a context (a few KiB changed in a large file, one
# source changed, one file added).
edit() {
  python3 - "$1" "$2" <<'PY'
import os, random, sys
d, i = sys.argv[1], int(sys.argv[2])
rng = random.Random(i)
p = f"{d}/app/large{i % 3}.bin"
data = bytearray(open(p, "rb").read())
off = rng.randrange(len(data) - 8192)
data[off:off + 4096] = rng.randbytes(4096)
open(p, "wb").write(data)
open(f"{d}/app/src/f{i % 200}.js", "w").write(f"export const changed = {i};\n")
open(f"{d}/app/added-{i}.txt", "w").write(f"version {i}\n" * 100)
PY
}
note "building soak-app:0..$updates"
build "$work/ctx/app" soak-app:0
for i in $(seq 1 "$updates"); do
  edit "$work/ctx/app" "$i"
  build "$work/ctx/app" "soak-app:$i"
done
for k in 1 2 3 4; do
  build "$work/ctx/par-$k" "soak-par-$k:1"
  edit "$work/ctx/par-$k" 1
  build "$work/ctx/par-$k" "soak-par-$k:2"
done
for ref in soak-app:0 soak-par-1:1 soak-par-2:1 soak-par-3:1 soak-par-4:1; do
  docker_h "$engine" save "$ref" | docker_h "$site" load -q >/dev/null || die "load $ref into the site"
done

# ---- receiver ----
pki="$work/pki"
bounded deploy/make-certs.sh "$pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name soak >/dev/null || die "make-certs.sh failed"
store="$work/store"
"$deltarecvd" --listen 127.0.0.1:0 --cert "$pki/receiver.pem" --key "$pki/receiver.key" \
  --ca "$pki/ca.pem" --store "$store" --store-budget "$budget" --engine "$site" \
  --max-sessions 16 --log-level info >"$work/deltarecvd.log" 2>&1 &
recv_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/deltarecvd.log" | tail -n1)"
  [ -n "$port" ] && break
  kill -0 "$recv_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || die "deltarecvd did not start: $(tail -5 "$work/deltarecvd.log")"

csv="$work/samples.csv"
echo "phase,step,rss_kib,fds,threads,store_bytes,send_seconds" >"$csv"
sample() {  # PHASE STEP SECONDS
  local rss fds threads store_bytes
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$recv_pid/status")"
  threads="$(awk '/^Threads:/ {print $2}' "/proc/$recv_pid/status")"
  fds="$(find "/proc/$recv_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)"
  store_bytes="$(du -sb "$store" | cut -f1)"
  echo "$1,$2,$rss,$fds,$threads,$store_bytes,$3" >>"$csv"
}
send() {  # IMAGE LOG
  bounded "$deltasend" "$1" --to "127.0.0.1:$port" --cert "$pki/sender-soak.pem" \
    --key "$pki/sender-soak.key" --ca "$pki/ca.pem" --engine "$engine" \
    --cache-dir "$work/cache" --quiet >"$2" 2>&1
}
check() {  # IMAGE
  local want got
  want="$(image_id "$engine" "$1")"
  got="$(image_id "$site" "$1")"
  [ -n "$want" ] && [ "$want" = "$got" ] || die "the site holds '${got:-nothing}' for $1, not $want"
}

sample start 0 0
note "sequential: $updates updates"
for i in $(seq 1 "$updates"); do
  t0=$(date +%s.%N)
  send "soak-app:$i" "$work/send-$i.log" || die "send soak-app:$i failed: $(tail -3 "$work/send-$i.log")"
  t1=$(date +%s.%N)
  check "soak-app:$i"
  if [ "$i" -ge 2 ]; then docker_h "$site" image rm "soak-app:$((i - 2))" >/dev/null 2>&1 || true; fi
  sample sequential "$i" "$(python3 -c "print('%.2f' % ($t1 - $t0))")"
  [ $((i % 10)) -eq 0 ] && note "  $i/$updates"
done

note "concurrent: $rounds rounds of $senders senders"
for r in $(seq 1 "$rounds"); do
  t0=$(date +%s.%N)
  pids=()
  for s in $(seq 1 "$senders"); do
    if [ $((s % 2)) -eq 1 ]; then img="soak-par-$(((s / 2) % 4 + 1)):2"; else img="soak-par-1:2"; fi
    send "$img" "$work/par-$r-$s.log" &
    pids+=("$!")
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  t1=$(date +%s.%N)
  [ "$failed" -eq 0 ] || die "round $r: $failed senders failed: $(tail -3 "$work"/par-"$r"-*.log)"
  for k in 1 2 3 4; do check "soak-par-$k:2"; done
  sample concurrent "$r" "$(python3 -c "print('%.2f' % ($t1 - $t0))")"
  for k in 1 2 3 4; do docker_h "$site" image rm "soak-par-$k:2" >/dev/null 2>&1 || true; done
done
sleep 2
sample idle 0 0

cp "$csv" "$results/soak-latest.csv"
rc=0
python3 - "$csv" "$budget" "$updates" "$senders" "$rounds" >"$results/soak-latest.md" <<'PY' || rc=$?
import csv, datetime, os, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
budget_text, updates, senders, rounds = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", budget_text)
budget = int(m[1]) * {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, None: 1}[m[2]] if m else 0
seq = [r for r in rows if r["phase"] == "sequential"]
con = [r for r in rows if r["phase"] == "concurrent"]
idle = [r for r in rows if r["phase"] == "idle"][-1]
def col(rs, k): return [int(r[k]) for r in rs]
seq_warm = max(col(seq[1:6], "rss_kib"))
seq_last = max(col(seq[-10:], "rss_kib"))
con_warm = int(con[1]["rss_kib"]) if len(con) > 1 else int(con[0]["rss_kib"])
con_last = int(con[-1]["rss_kib"])
fd_warm, th_warm = int(seq[0]["fds"]), int(seq[0]["threads"])
store_max = max(col(rows, "store_bytes"))
flat_seq = seq_last <= seq_warm * 1.25 + 8 * 1024
flat_con = con_last <= con_warm * 1.25 + 8 * 1024
flat_fd = int(idle["fds"]) <= fd_warm and int(idle["threads"]) <= th_warm
within = budget == 0 or store_max <= budget * 1.1
print("Soak (%s, %d cores): %s sequential updates, then %s rounds of %s concurrent senders, one "
      "deltarecvd (store budget %s)." % (datetime.date.today().isoformat(), os.cpu_count(), updates,
                                         rounds, senders, budget_text))
print()
print("| sample | receiver RSS | descriptors | threads | store | send time |")
print("|---|--:|--:|--:|--:|--:|")
pick = rows[:2] + [r for r in seq if int(r["step"]) % 10 == 0] + con + [idle]
for r in pick:
    print("| %s %s | %.1f MiB | %s | %s | %.1f MiB | %s s |" % (
        r["phase"], r["step"], int(r["rss_kib"]) / 1024, r["fds"], r["threads"],
        int(r["store_bytes"]) / (1 << 20), r["send_seconds"]))
print()
print("Receiver RSS, sequential: %.1f MiB after warm-up, at most %.1f MiB over the last 10 "
      "updates: %s. Concurrent: %.1f MiB after round 2, %.1f MiB after the last: %s. Idle at the "
      "end: %.1f MiB. Descriptors %s -> %s, threads %s -> %s at idle: %s. Largest store %.1f MiB "
      "(budget %s): %s." % (
          seq_warm / 1024, seq_last / 1024, "flat" if flat_seq else "GROWS",
          con_warm / 1024, con_last / 1024, "flat" if flat_con else "GROWS",
          int(idle["rss_kib"]) / 1024, fd_warm, idle["fds"], th_warm, idle["threads"],
          "flat" if flat_fd else "GROWS", store_max / (1 << 20), budget_text,
          "within" if within else "OVER"))
sys.exit(0 if flat_seq and flat_con and flat_fd and within else 3)
PY
cat "$results/soak-latest.md"
exit "$rc"
