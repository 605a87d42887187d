#!/usr/bin/env bash
# Bytes on the wire of the daemon pair (`deltasend IMAGE --to` + deltarecvd),
# per image pair, against the offline bundle of the same update.
#
#   bench/run-daemon-bench.sh [BUILD_DIR]      (BUILD_DIR defaults to build)
#
# Starts two private engines (scripts/test-engine.sh): the sender's
# (daemon-bench), where every pair generator bench/pairs/*.sh builds OLD and
# NEW, and the site's (daemon-bench-site), which gets only OLD (docker save |
# docker load). Makes one set of certificates (deploy/make-certs.sh). Then,
# per pair, in one run:
#   bundle   `deltasend bundle NEW --base OLD --effort default`: its size;
#   local    `deltasend NEW --to` while the sender holds the basis (mode
#            local): socket bytes both ways, time;
#   remote   the same with `--no-local-basis` (mode remote: the site sends its
#            basis index and librsync signatures);
#   again    a repeat send when the site already holds NEW: the fixed cost of
#            one session (TLS handshake, Hello, Inventory, Commit, Result);
#   remote-warm  remote once more with the --cache-dir the remote run filled
#            (the site's basis index is cached on the sender, so only
#            signatures and the stream cross): a later update from that basis.
#   local-cache  LOCAL with the basis from the sender's layer cache
#            (sender/cache/): a run sends OLD (which the site holds) with a
#            fresh --cache-dir, which keeps OLD's layers and config there
#            (cache-fill); OLD is removed from the sender's engine; then NEW
#            is sent with that --cache-dir to a fresh receiver: mode local,
#            basis_source cache;
#   fixed    NEW again, the site holding it, with a fresh --cache-dir (no TLS
#            ticket) and --no-cache: the fixed cost of a session with a full
#            handshake, as the remote and local-cache runs pay it;
#   baselines  bench/baselines/measure.sh (rsync of the unpacked root
#            filesystems, etc.) and bench/baselines/rsync-floor.py (the least
#            a one-round librsync exchange can cost) on the same images;
#            BENCH_BASELINES=0 leaves them out.
# Each transfer gets a fresh deltarecvd with a fresh --store and (but for
# remote-warm) a fresh --cache-dir, and NEW is removed from the site's
# engine (docker rmi) before it, so each one really transfers. After each, the site's engine must hold
# NEW with the sender's image ID. A pair whose transfer fails, or whose image
# ID differs, gets a FAILED row (with the reason and the logs' tails on
# stderr); the other pairs still run, and the script exits 1 at the end.
# Prints Markdown tables and writes them to bench/results/daemon-latest.md
# (raw figures, one JSON object per pair: daemon-latest.jsonl). The logs of
# both sides of every transfer stay in BENCH_WORKDIR/logs when BENCH_KEEP=1.
#
# Env: BENCH_PAIRS="app-zeros deps-bump"  run only these pairs
#      BENCH_RESULTS (default bench/results): where the tables and JSON go
#      BENCH_WORKDIR (default /var/tmp/deltasync-daemon-bench-work): scratch,
#        a few GiB; emptied at the end unless BENCH_KEEP=1 (the .deb cache
#        stays; seeded from run-wire-bench.sh's cache when there is one)
#      BENCH_STEP_TIMEOUT (default 900): seconds any one step may take
#      DELTASYNC_ENGINE_ROOT (see scripts/test-engine.sh), DELTASYNC_DOCKER_CLI
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
work="${BENCH_WORKDIR:-/var/tmp/deltasync-daemon-bench-work}"
results="${BENCH_RESULTS:-$repo/bench/results}"
step_timeout="${BENCH_STEP_TIMEOUT:-900}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
sender_engine_name=daemon-bench
site_engine_name=daemon-bench-site

die() {
  echo "run-daemon-bench: $*" >&2
  exit 1
}
note() { echo "== $*" >&2; }
for c in "$DOCKER" python3 openssl timeout npm apt-get dpkg-deb; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found (run scripts/install-deps.sh)"
done
[ -x "$build_dir/sender/deltasend" ] || die "no $build_dir/sender/deltasend (build it first)"
[ -x "$build_dir/receiver/deltarecvd" ] || die "no $build_dir/receiver/deltarecvd (build it first)"

# bounded CMD...: CMD under the step timeout (then SIGTERM, SIGKILL 10 s on).
bounded() { timeout --kill-after=10 "$step_timeout" "$@"; }
docker_h() { DOCKER_CLI_HINTS=false bounded "$DOCKER" -H "$1" "${@:2}"; }
# image_id ENGINE REF: the content identity (config digest). That is the Id
# on the classic store and Podman; on Docker's containerd image store (Id =
# manifest digest) it is the sha256 of the config `docker save` names.
image_id() {
  if docker_h "$1" info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q io.containerd.snapshotter.v1; then
    docker_h "$1" image inspect "$2" >/dev/null 2>&1 || return 0
    docker_h "$1" save "$2" 2>/dev/null | python3 -c '
import hashlib, json, sys, tarfile
members = {}
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
    for m in t:
        if m.isfile():
            members[m.name] = t.extractfile(m).read()
cfg = json.loads(members["manifest.json"])[0]["Config"]
print("sha256:" + hashlib.sha256(members[cfg]).hexdigest())' || true
  else
    docker_h "$1" image inspect -f '{{.Id}}' "$2" 2>/dev/null || true
  fi
}
now() { date +%s.%N; }

rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null || echo +dirty)"
mkdir -p "$work/bin" "$work/logs"
work="$(cd "$work" && pwd)"
# Copies of the binaries, so a rebuild during the run cannot mix versions.
cp "$build_dir/sender/deltasend" "$work/bin/deltasend"
cp "$build_dir/receiver/deltarecvd" "$work/bin/deltarecvd"
# The deltasync-gzip helpers go beside the copies (<bin>/../libexec/deltasync).
rm -rf "$work/libexec" && mkdir -p "$work/libexec"
if [ -d "$build_dir/libexec/deltasync" ]; then cp -r "$build_dir/libexec/deltasync" "$work/libexec/"; fi
deltasend="$work/bin/deltasend"
deltarecvd="$work/bin/deltarecvd"
# (The help text is read whole first: `grep -q` on the pipe would close it
# early, and under pipefail the writer's SIGPIPE fails the check at random.)
send_help="$("$deltasend" --help 2>/dev/null || true)"
recv_help="$("$deltarecvd" --help 2>/dev/null || true)"
grep -q -- "--no-local-basis" <<<"$send_help" || die "$deltasend has no --to / --no-local-basis"
grep -q -- "--listen" <<<"$recv_help" || die "$deltarecvd has no --listen"
export DELTASEND="$deltasend"
# The pinned .debs the generators download: reuse run-wire-bench.sh's cache.
if [ ! -d "$work/.debs" ] && [ -d /var/tmp/deltasync-bench-work/.debs ]; then
  cp -a /var/tmp/deltasync-bench-work/.debs "$work/.debs"
fi

if [ -n "${BENCH_PAIRS:-}" ]; then
  read -r -a pairs <<<"$BENCH_PAIRS"
else
  pairs=()
  for f in bench/pairs/*.sh; do
    case "$(basename "$f")" in _*) continue ;; esac
    pairs+=("$(basename "$f" .sh)")
  done
fi

engine_started=0 site_started=0 recv_pid=""
recv_pid_file="$work/deltarecvd.pid"
# stop_receiver: SIGTERM to the deltarecvd this script started (its pid is in
# recv_pid, or in recv_pid_file when a pair's subshell started it), SIGKILL
# after 15 s.
stop_receiver() {
  if [ -z "$recv_pid" ] && [ -s "$recv_pid_file" ]; then
    recv_pid="$(tr -dc '0-9' <"$recv_pid_file")"
  fi
  rm -f "$recv_pid_file"
  [ -n "$recv_pid" ] || return 0
  kill -TERM "$recv_pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$recv_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$recv_pid" 2>/dev/null; then
    echo "run-daemon-bench: deltarecvd $recv_pid did not stop in 15 s; killing it" >&2
    kill -KILL "$recv_pid" 2>/dev/null || true
  fi
  wait "$recv_pid" 2>/dev/null || true
  recv_pid=""
}
cleanup() {
  stop_receiver
  if [ "$site_started" = 1 ]; then scripts/test-engine.sh stop "$site_engine_name" >/dev/null 2>&1 || true; fi
  if [ "$engine_started" = 1 ]; then scripts/test-engine.sh stop "$sender_engine_name" >/dev/null 2>&1 || true; fi
  if [ -z "${BENCH_KEEP:-}" ] && [ -d "$work" ]; then
    find "$work" -mindepth 1 -maxdepth 1 ! -name .debs -exec rm -rf {} +
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$results"
engine="$(scripts/test-engine.sh start "$sender_engine_name")"
engine_started=1
site="$(scripts/test-engine.sh start "$site_engine_name")"
site_started=1
bounded bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >/dev/null

pki="$work/pki"
rm -rf "$pki"
bounded deploy/make-certs.sh "$pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name bench >/dev/null || die "make-certs.sh failed"

# start_receiver STORE LOG: a fresh deltarecvd on 127.0.0.1 (any port) for
# the site engine; sets recv_pid and port.
port=""
start_receiver() {
  local store="$1" log="$2" deadline
  stop_receiver
  rm -rf "$store"
  : >"$log"
  "$deltarecvd" --listen 127.0.0.1:0 --cert "$pki/receiver.pem" --key "$pki/receiver.key" \
    --ca "$pki/ca.pem" --store "$store" --engine "$site" --log-level info >"$log" 2>&1 &
  recv_pid=$!
  echo "$recv_pid" >"$recv_pid_file"
  deadline=$((SECONDS + 30))
  port=""
  while [ $SECONDS -lt $deadline ]; do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | tail -n1 || true)"
    [ -n "$port" ] && return 0
    kill -0 "$recv_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  fail "deltarecvd did not report 'listening on' within 30 s (log above)"
}

# send NAME OUT_JSON ERR_LOG [ARGS...]: deltasend NEW (or $send_image) --to
# the receiver.
send_image=""
send() {
  local name="$1" out="$2" err="$3" t0 t1
  shift 3
  t0=$(now)
  if ! bounded "$deltasend" "${send_image:-$new}" --to "127.0.0.1:$port" --cert "$pki/sender-bench.pem" \
    --key "$pki/sender-bench.key" --ca "$pki/ca.pem" --engine "$engine" --json \
    --log-level info "$@" >"$out" 2>"$err"; then
    echo "--- deltasend ($name) stderr:" >&2
    tail -n 20 "$err" >&2
    echo "--- deltarecvd log:" >&2
    tail -n 20 "$recv_log" >&2
    fail "deltasend ($name) failed: $(grep -m1 'error:' "$err" || tail -n1 "$err")"
  fi
  t1=$(now)
  python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1" >"$out.wall"
}

# check_site NAME OUT_JSON: the site's engine holds NEW with the sender's ID.
check_site() {
  local name="$1" out="$2" got reported
  got="$(image_id "$site" "$new")"
  reported="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["image_id"])' "$out")"
  [ "$got" = "$want" ] || fail "$name: the site's engine holds '${got:-nothing}' for $new, not $want"
  [ "$reported" = "$want" ] || fail "$name: deltasend reports $reported, not $want"
}

# remove_from_site: NEW leaves the site's engine (so the next run transfers).
remove_from_site() {
  docker_h "$site" image rm "$new" >/dev/null 2>&1 || true
  [ -z "$(image_id "$site" "$want")" ] || fail "cannot remove $new ($want) from the site's engine"
}

# fail MSG: the current pair fails (run_pair runs in a subshell: this ends
# only that pair; the reason goes to LOGS/failed).
fail() {
  echo "run-daemon-bench: $pair: $*" >&2
  echo "$*" >"$logs/failed"
  exit 1
}

jsonl="$work/daemon.jsonl"
: >"$jsonl"
# run_pair: everything for one pair, run in a subshell (set -e; fail ends
# it). Writes LOGS/* and, on success, one line to $jsonl.
run_pair() {
  trap stop_receiver EXIT
  trap 'exit 130' INT TERM
  local tags b0 b1 bundle_bytes bundle_seconds mode extra
  tags="$(bounded "$gen" "$engine" bench- "$work")" || fail "generator failed"
  read -r old new <<<"$tags"
  echo "$old $new" >"$logs/tags"
  want="$(image_id "$engine" "$new")"
  [ -n "$want" ] || fail "$new missing in the sender's engine"
  note "$pair: $old -> $new built in $((SECONDS - t0)) s"

  note "$pair: bundle (--effort default)"
  b0=$(now)
  bounded "$deltasend" --engine "$engine" bundle "$new" --base "$old" -o "$pw/bundle.dsb" --unsigned \
    --effort default -q || fail "deltasend bundle failed"
  b1=$(now)
  bundle_bytes=$(stat -c %s "$pw/bundle.dsb")
  bundle_seconds=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$b0" "$b1")
  rm -f "$pw/bundle.dsb"
  echo "$bundle_bytes" >"$logs/bundle-bytes"

  note "$pair: the site gets only $old"
  docker_h "$site" image rm -f "$new" "$old" >/dev/null 2>&1 || true
  docker_h "$engine" save "$old" | docker_h "$site" load -q >/dev/null ||
    fail "cannot load $old into the site's engine"
  [ -z "$(image_id "$site" "$want")" ] || fail "the site already holds $new"

  for mode in local remote; do
    remove_from_site
    recv_log="$logs/deltarecvd-$mode.log"
    start_receiver "$pw/store-$mode" "$recv_log"
    extra=(--cache-dir "$pw/cache-$mode")
    rm -rf "$pw/cache-$mode"
    if [ "$mode" = remote ]; then extra+=(--no-local-basis); fi
    if [ "$mode" = local ]; then
      note "$pair: deltasend --to --dry-run (local)"
      send dry-local "$logs/dry-local.json" "$logs/dry-local.err" "${extra[@]}" --dry-run
      [ -z "$(image_id "$site" "$want")" ] || fail "a dry run loaded $new"
    fi
    note "$pair: deltasend --to ($mode)"
    send "$mode" "$logs/$mode.json" "$logs/$mode.err" "${extra[@]}"
    check_site "$mode" "$logs/$mode.json"
    note "$pair: deltasend --to again (the site holds $new)"
    send "again-$mode" "$logs/again-$mode.json" "$logs/again-$mode.err" "${extra[@]}"
    check_site "again-$mode" "$logs/again-$mode.json"
    stop_receiver
  done
  # remote-warm: remote again (fresh store, NEW removed) but with the index
  # cache the remote run left: what a second update from the same basis costs.
  remove_from_site
  recv_log="$logs/deltarecvd-remote-warm.log"
  start_receiver "$pw/store-remote-warm" "$recv_log"
  # The dry run of remote-warm: its own (cold) cache, which it fills; its
  # estimate is for a run whose cache holds the index, as remote-warm's does.
  note "$pair: deltasend --to --dry-run (remote)"
  rm -rf "$pw/cache-dry-remote"
  send dry-remote "$logs/dry-remote.json" "$logs/dry-remote.err" \
    --cache-dir "$pw/cache-dry-remote" --no-local-basis --dry-run
  # The TLS session ticket the dry run left goes where the real run looks, as
  # it would for one user with one cache (the estimate counts on resuming).
  mkdir -p "$pw/cache-remote/tls"
  cp "$pw/cache-dry-remote/tls/"*.session "$pw/cache-remote/tls/" 2>/dev/null || true
  note "$pair: deltasend --to (remote, the sender's index cache warm)"
  send remote-warm "$logs/remote-warm.json" "$logs/remote-warm.err" \
    --cache-dir "$pw/cache-remote" --no-local-basis
  check_site remote-warm "$logs/remote-warm.json"
  stop_receiver
  # Per basis layer: the size of the index the site sent (the sender caches
  # each one as DIFFID-12.idx), and whether NEW shares that layer.
  docker_h "$engine" image inspect -f '{{json .RootFS.Layers}}' "$old" >"$logs/old-layers.json"
  docker_h "$engine" image inspect -f '{{json .RootFS.Layers}}' "$new" >"$logs/new-layers.json"
  (cd "$pw/cache-remote/index" 2>/dev/null && stat -c '%n %s' -- *.idx) >"$logs/remote-index-files.txt" || true

  # Baselines on the same images, while the sender's engine holds both.
  if [ "${BENCH_BASELINES:-1}" != 0 ]; then
    note "$pair: baselines (measure.sh: rsync of the root filesystems; rsync-floor.py)"
    bounded bench/baselines/measure.sh "$engine" "$old" "$new" "$pw/measure" "$pair" \
      >"$logs/baselines.json" 2>"$logs/baselines.err" || fail "measure.sh failed: $(tail -n 3 "$logs/baselines.err")"
    docker_h "$engine" save -o "$pw/old.tar" "$old" || fail "docker save $old failed"
    docker_h "$engine" save -o "$pw/new.tar" "$new" || fail "docker save $new failed"
    bounded python3 bench/baselines/rsync-floor.py "$pw/old.tar" "$pw/new.tar" >"$logs/floor.json" \
      2>"$logs/floor.err" || fail "rsync-floor.py failed: $(tail -n 3 "$logs/floor.err")"
    rm -f "$pw/old.tar" "$pw/new.tar"
  fi

  # local-cache: the sender's layer cache holds OLD (it sent OLD, which the
  # site holds), its engine no longer does.
  note "$pair: the sender's layer cache keeps $old (a send of $old, which the site holds)"
  rm -rf "$pw/cache-lc"
  recv_log="$logs/deltarecvd-cache-fill.log"
  start_receiver "$pw/store-cache-fill" "$recv_log"
  send_image="$old"
  send cache-fill "$logs/cache-fill.json" "$logs/cache-fill.err" --cache-dir "$pw/cache-lc"
  send_image=""
  stop_receiver
  du -sb "$pw/cache-lc/layers" | cut -f1 >"$logs/cache-bytes"
  docker_h "$engine" image rm "$old" >/dev/null || fail "cannot remove $old from the sender's engine"
  remove_from_site
  recv_log="$logs/deltarecvd-local-cache.log"
  start_receiver "$pw/store-local-cache" "$recv_log"
  note "$pair: deltasend --to (local, the basis from the layer cache)"
  send local-cache "$logs/local-cache.json" "$logs/local-cache.err" --cache-dir "$pw/cache-lc"
  check_site local-cache "$logs/local-cache.json"
  note "$pair: deltasend --to again, full handshake, no cache (the fixed cost of a session)"
  rm -rf "$pw/cache-fixed"
  send fixed "$logs/fixed.json" "$logs/fixed.err" --cache-dir "$pw/cache-fixed" --no-cache
  stop_receiver

  python3 - "$pair" "$logs" "$bundle_bytes" "$bundle_seconds" >"$logs/row.json" <<'PY' ||
import json, re, sys
pair, logs, bundle_bytes, bundle_seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
out = {"pair": pair, "bundle_default_bytes": bundle_bytes, "bundle_default_seconds": bundle_seconds}
old_layers = json.load(open(logs + "/old-layers.json"))
new_layers = set(json.load(open(logs + "/new-layers.json")))
sizes = {}
for line in open(logs + "/remote-index-files.txt"):
    name, size = line.split()
    sizes["sha256:" + name.split("-")[0]] = int(size)
out["remote_index_by_basis_layer"] = [
    {"layer": i + 1, "diff_id": d[7:19], "index_bytes": sizes.get(d), "in_new": d in new_layers}
    for i, d in enumerate(old_layers)]
layer_re = re.compile(r"layer (\d+) \((\S+)\): (\d+) segments, (\d+) entries, (\d+) deltas, "
                      r"(\d+) literal bytes, stream (\d+)")
recv_re = re.compile(r"loaded and verified: (\d+) layers rebuilt, (\d+) from the store, (\d+) in the "
                     r"engine; (\d+) bytes received in ([0-9.]+)s")
for run in ("local", "again-local", "remote", "again-remote", "remote-warm", "cache-fill",
            "local-cache", "fixed"):
    j = json.loads(open("%s/%s.json" % (logs, run)).read().strip().splitlines()[-1])  # the result event
    key = run.replace("-", "_")
    want_mode = {"local": "local", "remote": "remote", "remote-warm": "remote",
                 "local-cache": "local"}.get(run, "none")
    loaded = run.startswith("again") or run in ("cache-fill", "fixed")
    if j["mode"] != want_mode or j["already_loaded"] != loaded:
        sys.exit("%s: %s: mode %s, already_loaded %s" % (pair, run, j["mode"], j["already_loaded"]))
    r = {k: j[k] for k in ("mode", "already_loaded", "socket_bytes_sent", "socket_bytes_received",
                           "missing_layer_bytes", "pull_estimate_bytes", "layers_sent", "seconds",
                           "stream_bytes", "index_bytes", "signature_bytes", "image_id",
                           "build_host_image_id", "site_engine_image_id", "same_id_as_build_host",
                           "site_image_store", "basis_source", "tls_session_resumed") if k in j}
    r["socket_bytes"] = j["socket_bytes_sent"] + j["socket_bytes_received"]
    r["wall_seconds"] = float(open("%s/%s.json.wall" % (logs, run)).read())
    r["layers"] = [{"layer": int(m[0]), "diff_id": m[1], "segments": int(m[2]), "entries": int(m[3]),
                    "deltas": int(m[4]), "literal_bytes": int(m[5]), "stream_bytes": int(m[6])}
                   for m in layer_re.findall(open("%s/%s.err" % (logs, run)).read())]
    out[key] = r
# (An engine image holding all of OLD's layers, e.g. NEW = OLD + a layer,
# would still be found first: the table shows where the basis came from.)
kept_re = re.compile(r"layer cache: (\d+) layers linked \((\d+) bytes\), (\d+) copied \((\d+) bytes\), "
                     r"(\d+) already held")
m = kept_re.findall(open(logs + "/cache-fill.err").read())
if m:
    linked, linked_bytes, copied, copied_bytes, held = map(int, m[0])
    out["cache_fill"]["kept"] = {"linked": linked, "linked_bytes": linked_bytes, "copied": copied,
                                 "copied_bytes": copied_bytes, "already_held": held}
out["cache_bytes"] = int(open(logs + "/cache-bytes").read())
try:
    out["baselines"] = json.loads(open(logs + "/baselines.json").read().strip().splitlines()[-1])
    out["floor"] = json.loads(open(logs + "/floor.json").read().strip().splitlines()[-1])
except (OSError, IndexError, ValueError):
    pass
for mode in ("local", "remote", "remote-warm", "local-cache"):
    m = recv_re.findall(open("%s/deltarecvd-%s.log" % (logs, mode)).read())
    if m:
        rebuilt, stored, engine, received, secs = m[0]
        out[mode.replace("-", "_")]["site"] = {"layers_rebuilt": int(rebuilt), "layers_from_store": int(stored),
                             "layers_in_engine": int(engine), "bytes_received": int(received),
                             "seconds": float(secs)}
for dry, real in (("dry-local", "local"), ("dry-remote", "remote_warm")):
    j = json.loads(open("%s/%s.json" % (logs, dry)).read().strip().splitlines()[-1])
    if not j.get("dry_run"):
        sys.exit("%s: %s did not run dry" % (pair, dry))
    out[dry.replace("-", "_")] = {"estimated_wire_bytes": j["estimated_wire_bytes"],
                                  "real_socket_bytes": out[real]["socket_bytes"],
                                  "seconds": j["seconds"]}
out["missing_layer_bytes"] = out["local"]["missing_layer_bytes"]
out["image_id"] = out["local"]["image_id"]
print(json.dumps(out))
PY
    fail "unexpected figures (see above)"
  cat "$logs/row.json" >>"$jsonl"
}

failures=()
for pair in "${pairs[@]}"; do
  gen="bench/pairs/$pair.sh"
  [ -x "$gen" ] || die "no generator $gen"
  note "$pair: building"
  t0=$SECONDS
  pw="$work/$pair-run"
  logs="$work/logs/$pair"
  rm -rf "$pw" "$logs"
  mkdir -p "$pw" "$logs"
  set +e
  (
    set -e
    run_pair
  )
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    [ -s "$logs/failed" ] || echo "exit status $rc" >"$logs/failed"
    failures+=("$pair")
    python3 -c 'import json, os, sys
d = sys.argv[2]
r = {"pair": sys.argv[1], "failed": open(d + "/failed").read().strip()}
if os.path.exists(d + "/bundle-bytes"):
    r["bundle_default_bytes"] = int(open(d + "/bundle-bytes").read())
print(json.dumps(r))' "$pair" "$logs" >>"$jsonl"
  fi
  stop_receiver
  # Free both engines' disk (vfs keeps a full copy per layer) and the scratch.
  if [ -s "$logs/tags" ]; then
    read -r old new <"$logs/tags"
    docker_h "$site" image rm -f "$new" "$old" >/dev/null 2>&1 || true
    docker_h "$engine" image rm -f "$new" "$old" >/dev/null 2>&1 || true
  fi
  rm -rf "$pw"
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "${work:?}/$pair"
  if [ "$rc" -eq 0 ]; then
    note "$pair: done in $((SECONDS - t0)) s"
  else
    note "$pair: FAILED after $((SECONDS - t0)) s: $(cat "$logs/failed")"
  fi
done

cp "$jsonl" "$results/daemon-latest.jsonl"
python3 - "$jsonl" "$rev" >"$results/daemon-latest.md" <<'PY'
import datetime, json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rev = sys.argv[2]

def b(n):
    if n < 10 * 1024:
        return "%s B" % format(n, ",")
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%s B (%.1f %s)" % (format(n, ","), n / div, unit)

def ratio(x, y):
    return "%.2fx" % (x / y) if y > 0 else "n/a"

try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
except Exception:
    cpu = "?"
print("Daemon transfer bytes per image pair: %s, deltasync %s, %d cores (%s); loopback, "
      "TLS 1.3 with mutual authentication, --effort default. Bytes are counted at the sender's "
      "socket, both directions (TLS records included)." % (
          datetime.date.today().isoformat(), rev, os.cpu_count(), cpu))
print()
print("| pair | new layer bytes | bundle | local bytes (ratio to bundle) | remote bytes (ratio) "
      "| already-loaded bytes | times: bundle / local / remote / already-loaded |")
print("|---|--:|--:|--:|--:|--:|--:|")
for r in rows:
    if "failed" in r:
        print("| %s | FAILED: %s | %s | | | | |" % (
            r["pair"], r["failed"].replace("|", "/"),
            b(r["bundle_default_bytes"]) if "bundle_default_bytes" in r else ""))
        continue
    bun, loc, rem = r["bundle_default_bytes"], r["local"]["socket_bytes"], r["remote"]["socket_bytes"]
    again = r["again_local"]["socket_bytes"]
    print("| %s | %s | %s | %s (%s) | %s (%s) | %s | %.1f / %.1f / %.1f / %.2f s |" % (
        r["pair"], b(r["missing_layer_bytes"]), b(bun), b(loc), ratio(loc, bun), b(rem), ratio(rem, bun),
        b(again), r["bundle_default_seconds"], r["local"]["seconds"], r["remote"]["seconds"],
        r["again_local"]["seconds"]))
print()
print("The site's Id (local and remote runs) against the build host's:")
print()
print("| pair | site's store | build host's Id | local: site's Id | remote: site's Id | same |")
print("|---|---|---|---|---|:-:|")
for r in rows:
    if "failed" in r:
        continue
    lo, re_ = r["local"], r["remote"]
    same = lo.get("same_id_as_build_host") and re_.get("same_id_as_build_host")
    print("| %s | %s | %s | %s | %s | %s |" % (
        r["pair"], lo.get("site_image_store", "?"), lo.get("build_host_image_id", "?")[:19],
        lo.get("site_engine_image_id", "?")[:19], re_.get("site_engine_image_id", "?")[:19],
        "yes" if same else "no"))
print()
print("Without the fixed cost of a session (the already-loaded bytes: TLS handshake, Hello, "
      "Inventory, Commit, Result) subtracted from local and remote; targets local <= 1.1x, "
      "remote <= 1.5x of the bundle:")
print()
print("| pair | local - fixed (ratio) | local target | remote - fixed (ratio) | remote target "
      "| remote, index cached: bytes (ratio); - fixed (ratio) |")
print("|---|--:|:-:|--:|:-:|--:|")
rows = [r for r in rows if "failed" not in r]
for r in rows:
    bun = r["bundle_default_bytes"]
    again = r["again_local"]["socket_bytes"]
    loc, rem = r["local"]["socket_bytes"], r["remote"]["socket_bytes"]
    def verdict(x, bar):
        with_fixed = "yes" if x <= bar * bun else "no"
        without = "yes" if x - again <= bar * bun else "no"
        return "%s with / %s without" % (with_fixed, without)
    warm = r["remote_warm"]["socket_bytes"]
    print("| %s | %s (%s) | %s | %s (%s) | %s | %s (%s); %s (%s) |" % (
        r["pair"], b(max(0, loc - again)), ratio(loc - again, bun), verdict(loc, 1.1),
        b(max(0, rem - again)), ratio(rem - again, bun), verdict(rem, 1.5),
        b(warm), ratio(warm, bun), b(max(0, warm - again)), ratio(warm - again, bun)))
print()
print("`--dry-run` estimates against the real run that follows (local; remote with the index "
      "cached, as after a dry run); target within 10%:")
print()
print("| pair | local: estimate / real (error) | remote: estimate / real (error) | within 10% |")
print("|---|--:|--:|:-:|")
for r in rows:
    cells, ok = [], True
    for key in ("dry_local", "dry_remote"):
        d = r.get(key)
        if not d:
            cells.append("n/a")
            ok = False
            continue
        est, real = d["estimated_wire_bytes"], d["real_socket_bytes"]
        err = (est - real) / real * 100 if real else 0
        ok = ok and abs(err) <= 10
        cells.append("%s / %s (%+.1f%%)" % (format(est, ","), format(real, ","), err))
    print("| %s | %s | %s | %s |" % (r["pair"], cells[0], cells[1], "yes" if ok else "no"))
print()
print("Where the bytes go (payloads before framing and TLS; index and signatures come from "
      "the site, the stream from the sender; 'other' = socket bytes - fixed - the three):")
print()
print("| pair | local stream | local other | remote index (of it: layers NEW shares) | remote signatures | remote stream | remote other | sent / received (remote) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    again = r["again_local"]["socket_bytes"]
    lo, re_ = r["local"], r["remote"]
    lo_other = lo["socket_bytes"] - again - lo["stream_bytes"] - lo["index_bytes"] - lo["signature_bytes"]
    re_other = re_["socket_bytes"] - again - re_["stream_bytes"] - re_["index_bytes"] - re_["signature_bytes"]
    shared = sum(l["index_bytes"] or 0 for l in r.get("remote_index_by_basis_layer", []) if l["in_new"])
    print("| %s | %s | %s | %s (%s) | %s | %s | %s | %s / %s |" % (
        r["pair"], b(lo["stream_bytes"]), format(lo_other, ","), b(re_["index_bytes"]), b(shared),
        b(re_["signature_bytes"]), b(re_["stream_bytes"]), format(re_other, ","),
        b(re_["socket_bytes_sent"]), b(re_["socket_bytes_received"])))
PY
python3 - "$jsonl" >>"$results/daemon-latest.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if "failed" not in r and "local_cache" in r]
print()
print("REMOTE against LOCAL with the basis from the sender's layer cache (the engine no longer "
      "holds OLD), and REMOTE against rsync and the one-round floor. 'fixed' is one session with "
      "a full handshake and nothing to send (TLS, Hello, Inventory, Commit, Result), as both runs "
      "pay it; every ratio is on bytes without it. rsync: `rsync -a --no-whole-file -z` of the "
      "root filesystems (no ssh), the cheapest run that leaves the copy equal to NEW: plain -a "
      "(quick check: size + mtime) when it does, else with --checksum; 'rsync -a (stale)' is "
      "plain -a with the files it left different; floor: rsync-floor.py (signatures + deltas of "
      "same-path files, best block size with hindsight; no index, no new files):")
print()
print("| pair | fixed | remote - fixed | local from cache - fixed (basis from) | remote / local-cache "
      "| rsync -a (stale) | rsync -a --checksum | rsync (exact) | remote / rsync | floor | remote / floor |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    fixed = r["fixed"]["socket_bytes"]
    rem = r["remote"]["socket_bytes"] - fixed
    lc = r["local_cache"]["socket_bytes"] - fixed
    bl = r.get("baselines", {})
    rs = bl.get("rsync_bytes")
    fl = r.get("floor", {}).get("oracle_bytes")
    q = lambda x, y: "%.2fx" % (x / y) if x is not None and y else "n/a"
    n = lambda x: format(x, ",") if x is not None else "n/a"
    quick = "%s (%s)" % (n(bl.get("rsync_quick_bytes")), bl.get("rsync_quick_stale_files", "?"))
    print("| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
        r["pair"], format(fixed, ","), format(rem, ","), format(lc, ","),
        r["local_cache"].get("basis_source") or "?", q(rem, lc), quick,
        n(bl.get("rsync_checksum_bytes")), n(rs), q(rem, rs),
        format(fl, ",") if fl is not None else "n/a", q(rem, fl)))
print()
print("The layer cache: what keeping OLD cost (a send of OLD the site already held, so the run is "
      "all cache filling: read from the engine's export, indexed, then hard-linked or copied in) and "
      "its size on disk:")
print()
print("| pair | layers linked / copied / already held | bytes linked / copied | cache on disk "
      "| cache-fill run | already-loaded run without it |")
print("|---|--:|--:|--:|--:|--:|")
for r in rows:
    k = r["cache_fill"].get("kept", {})
    print("| %s | %s / %s / %s | %s / %s | %s | %.2f s | %.2f s |" % (
        r["pair"], k.get("linked", "?"), k.get("copied", "?"), k.get("already_held", "?"),
        format(k.get("linked_bytes", 0), ","), format(k.get("copied_bytes", 0), ","),
        format(r["cache_bytes"], ","), r["cache_fill"]["wall_seconds"], r["fixed"]["wall_seconds"]))
PY
cat "$results/daemon-latest.md"
if [ ${#failures[@]} -gt 0 ]; then
  die "FAILED: ${failures[*]} (see the FAILED rows; logs in $work/logs with BENCH_KEEP=1)"
fi
