#!/usr/bin/env bash
# Peak memory and speed with a 2 GiB layer on each side.
#
#   bench/run-memory-bench.sh [BUILD_DIR]      (default: build)
#
# Makes two single-layer images as docker-archives (a 2 GiB file of
# pseudo-random bytes; the new one has five 12-byte edits spread over it),
# encodes a bundle at --effort default and max (peak RSS and wall time from
# /usr/bin/time -v), loads the old image into a private engine, applies the
# bundle there and reports the receiver's peak RSS and its phase times
# (basis export, rebuild + verify, engine load). Needs ~10 GiB in
# $BENCH_WORKDIR (default /var/tmp/deltasync-membench).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
work="${BENCH_WORKDIR:-/var/tmp/deltasync-membench}"
deltasend="$(pwd)/$build/sender/deltasend"
deltarecvd="$(pwd)/$build/receiver/deltarecvd"
export DELTASYNC_ENGINE_ROOT="${DELTASYNC_ENGINE_ROOT:-/var/tmp/deltasync-membench-engines}"
mkdir -p "$work"
trap 'scripts/test-engine.sh stop membench >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

make_images() {
  mkdir -p "$work/old" "$work/new"
  openssl enc -aes-128-ctr -pass pass:deltasync -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c 2147483648 >"$work/old/big.bin"
  cp "$work/old/big.bin" "$work/new/big.bin"
  for off in 1000 500000000 1000000000 1500000000 2000000000; do
    printf 'EDITED-BYTES' | dd of="$work/new/big.bin" bs=1 seek="$off" conv=notrunc 2>/dev/null
  done
  touch -d @1600000000 "$work/old/big.bin" "$work/new/big.bin"
  tar --format=gnu -cf "$work/old.tar" -C "$work/old" . && tar --format=gnu -cf "$work/new.tar" -C "$work/new" .
  rm -rf "$work/old" "$work/new"
  python3 - "$work" <<'PY'
import hashlib, io, json, sys, tarfile
work = sys.argv[1]
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
for name in ("old", "new"):
    d = sha(f"{work}/{name}.tar")
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d]}}).encode()
    cid = hashlib.sha256(cfg).hexdigest()
    with tarfile.open(f"{work}/{name}-image.tar", "w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo(cid + ".json"); info.size = len(cfg); t.addfile(info, io.BytesIO(cfg))
        t.add(f"{work}/{name}.tar", arcname=d + "/layer.tar")
        m = json.dumps([{"Config": cid + ".json", "RepoTags": ["membench:" + name], "Layers": [d + "/layer.tar"]}]).encode()
        info = tarfile.TarInfo("manifest.json"); info.size = len(m); t.addfile(info, io.BytesIO(m))
PY
  rm -f "$work/old.tar" "$work/new.tar"
}

measure() {  # label, command...
  local label="$1"; shift
  /usr/bin/time -v "$@" >"$work/out.txt" 2>"$work/time.txt" || { cat "$work/out.txt" "$work/time.txt" >&2; exit 1; }
  local rss wall
  rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$work/time.txt")
  printf '| %s | %s | %.1f MiB |\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
  sed 's/^/    /' "$work/out.txt" >&2
}

make_images
echo "| step | wall | peak RSS |"
echo "|---|---:|---:|"
measure "deltasend bundle --effort default" "$deltasend" bundle "docker-archive:$work/new-image.tar" \
  --base "docker-archive:$work/old-image.tar" -o "$work/default.dsb" --effort default --unsigned
measure "deltasend bundle --effort max" "$deltasend" bundle "docker-archive:$work/new-image.tar" \
  --base "docker-archive:$work/old-image.tar" -o "$work/max.dsb" --effort max --unsigned
engine="$(scripts/test-engine.sh start membench)"
"${DELTASYNC_DOCKER_CLI:-docker}" -H "$engine" load -q -i "$work/old-image.tar" >/dev/null
measure "deltarecvd apply" "$deltarecvd" --engine "$engine" apply "$work/max.dsb" --allow-unsigned
echo "bundle bytes: default $(stat -c %s "$work/default.dsb"), max $(stat -c %s "$work/max.dsb")"
