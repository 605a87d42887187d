#!/usr/bin/env bash
# What the receiver's background indexer (receiver/service/engine_indexer.h)
# saves the first transfer after the receiver started: the time from
# deltasend's start to its exit (the site has loaded and verified NEW), on
# a site whose engine holds OLD and whose store is empty.
#
#   bench/run-index-bench.sh [BUILD_DIR]      (BUILD_DIR defaults to build)
#
# Two private engines (scripts/test-engine.sh; DELTASYNC_ENGINE_ROOT picks
# their root): the sender's (index-bench), where bench/pairs/$BENCH_PAIR.sh
# builds OLD and NEW, and the site's (index-bench-site), which gets OLD
# (docker save | docker load). Per run, each with a fresh store, a fresh
# deltarecvd and NEW removed from the site's engine:
#   off       deltarecvd --no-index-engine (as before the indexer): the
#             session exports OLD from the engine, then the transfer;
#   at-start  the indexer on, deltasend started as soon as the receiver
#             listens: the session finds OLD being indexed and waits for
#             that import (no second export);
#   indexed   the indexer on, deltasend started once the log says OLD is
#             indexed (the usual case: a receiver that has run a while);
#             the time the indexer took from the receiver's start is shown.
# The sender holds OLD (mode local) and gets a fresh --cache-dir each time.
# Prints one Markdown table (median of BENCH_RUNS) and the raw seconds: the
# whole send, and the wait for the site's Inventory within it (deltasend's
# "connecting" to "reading" phases: the handshake, the basis choice and,
# without the indexer, the export of OLD), which is the part the indexer
# changes; the rest (reading and coding on the sender, the stream, the
# site's rebuild and load) is the same in all three.
#
# Env: BENCH_PAIR (default deps-bump), BENCH_RUNS (default 3),
#      BENCH_WORKDIR (default /var/tmp/deltasync-index-bench-work),
#      DELTASYNC_ENGINE_ROOT, DELTASYNC_DOCKER_CLI
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
build_dir="${1:-build}"
case "$build_dir" in /*) ;; *) build_dir="$repo/$build_dir" ;; esac
pair="${BENCH_PAIR:-deps-bump}"
runs="${BENCH_RUNS:-3}"
work="${BENCH_WORKDIR:-/var/tmp/deltasync-index-bench-work}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
deltasend="$build_dir/sender/deltasend"
deltarecvd="$build_dir/receiver/deltarecvd"
die() {
  echo "run-index-bench: $*" >&2
  exit 1
}
[ -x "$deltasend" ] && [ -x "$deltarecvd" ] || die "build $build_dir first"
docker_h() { DOCKER_CLI_HINTS=false timeout 900 "$DOCKER" -H "$1" "${@:2}"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

recv_pid=""
stop_receiver() {
  [ -n "$recv_pid" ] || return 0
  kill -TERM "$recv_pid" 2>/dev/null || true
  wait "$recv_pid" 2>/dev/null || true
  recv_pid=""
}
cleanup() {
  stop_receiver
  scripts/test-engine.sh stop index-bench-site >/dev/null 2>&1 || true
  scripts/test-engine.sh stop index-bench >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work"
engine="$(scripts/test-engine.sh start index-bench)"
site="$(scripts/test-engine.sh start index-bench-site)"
bash scripts/make-base-image.sh "$engine" deltasync-base:busybox >/dev/null
bash scripts/make-base-image.sh "$site" deltasync-base:busybox >/dev/null
read -r old new < <(bench/pairs/"$pair".sh "$engine" bench- "$work")
echo "== pair $pair: $old -> $new" >&2
docker_h "$engine" save "$old" | docker_h "$site" load >/dev/null
pki="$work/pki"
rm -rf "$pki"
deploy/make-certs.sh "$pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name bench >/dev/null

# start_receiver LOG [ARGS...]: a fresh deltarecvd and store; sets port and
# t_start (when it was started).
start_receiver() {
  local log="$1"
  shift
  stop_receiver
  rm -rf "$work/store"
  : >"$log"
  t_start="$(now)"
  "$deltarecvd" --listen 127.0.0.1:0 --cert "$pki/receiver.pem" --key "$pki/receiver.key" \
    --ca "$pki/ca.pem" --store "$work/store" --engine "$site" --log-level info "$@" >"$log" 2>&1 &
  recv_pid=$!
  port=""
  for _ in $(seq 1 300); do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | tail -n1)"
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  tail "$log" >&2
  die "deltarecvd did not start"
}

# send_seconds LOG: sends NEW; prints "TOTAL WAIT": deltasend's start to its
# exit, and the wait for the site's Inventory (from the "connecting" phase to
# "reading", which is when the site has its basis ready: handshake, basis
# choice and, without the indexer, the export of OLD).
send_seconds() {
  local t0 t1 out="$work/send.jsonl"
  rm -rf "$work/cache"
  t0="$(now)"
  "$deltasend" "$new" --to "127.0.0.1:$port" --cert "$pki/sender-bench.pem" \
    --key "$pki/sender-bench.key" --ca "$pki/ca.pem" --engine "$engine" \
    --cache-dir "$work/cache" --json >"$out" || die "deltasend failed (receiver log: $1)"
  t1="$(now)"
  python3 - "$out" "$(secs "$t0" "$t1")" <<'PY'
import json, sys
t = {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "phase":
        t.setdefault(e["phase"], e["t"])
print(sys.argv[2], f"{t['reading'] - t['connecting']:.2f}")
PY
}

declare -A results waits
for run in $(seq 1 "$runs"); do
  for mode in off at-start indexed; do
    docker_h "$site" rmi "$new" >/dev/null 2>&1 || true
    log="$work/recv-$mode-$run.log"
    if [ "$mode" = off ]; then start_receiver "$log" --no-index-engine; else start_receiver "$log"; fi
    extra=""
    if [ "$mode" = indexed ]; then
      for _ in $(seq 1 3000); do
        grep -q "indexer: indexed $old" "$log" && break
        sleep 0.1
      done
      grep -q "indexer: indexed $old" "$log" || die "OLD not indexed (log $log)"
      extra="$(secs "$t_start" "$(now)")"
      # Let the indexer finish the other images too (the base), so it does
      # not share the cores with the transfer.
      sleep 2
    fi
    read -r s wait < <(send_seconds "$log")
    grep -q "exporting basis" "$log" && exported=yes || exported=no
    results[$mode]+="$s "
    waits[$mode]+="$wait "
    [ -n "$extra" ] && results[indexed-time]+="$extra "
    echo "run $run $mode: ${s}s, Inventory after ${wait}s (session exported: $exported)${extra:+; OLD indexed ${extra}s after the receiver started}" >&2
    stop_receiver
  done
done
median() { python3 -c "import sys, statistics; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" $1; }
echo
echo "| $pair, first transfer after the receiver started | deltasend start to loaded | wait for the site's Inventory | runs (total / wait, s) |"
echo "|---|---|---|---|"
row() { echo "| $1 | $(median "${results[$2]}") s | $(median "${waits[$2]}") s | ${results[$2]}/ ${waits[$2]}|"; }
row "off (--no-index-engine): the session exports OLD" off
row "indexer on, sender at once: waits for the indexer's import" at-start
row "indexer on, OLD indexed (after $(median "${results[indexed-time]}") s)" indexed
echo
echo "(medians of $runs runs)"
