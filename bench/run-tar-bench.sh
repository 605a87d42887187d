#!/usr/bin/env bash
# Tar split + reassemble benchmark on a ~1 GiB layer-like archive.
#
# Generates (once, deterministically) a tree under /var/tmp/deltasync-bench/
# and packs it with GNU tar into layer.tar, builds ds-bench-tar if needed,
# then runs it in both modes: payloads via a temp file, and payloads through a
# pipe to a concurrent reassembler. Dropping the page cache is not reliable
# here, so each mode does one warm-up run first (which also pulls the archive
# into the page cache) and the runs after it are the ones to report.
#
# The tree imitates an application layer: 20,000 small files of 1-16 KiB
# (half text, half binary) in 200 directories, some with paths longer than
# 100 bytes (GNU 'L' records), 200 medium files of 64 KiB-2 MiB, two files
# of 300 MiB, plus empty files, symlinks and hard links. Contents come from
# Python's Mersenne Twister with a fixed seed, so they do not compress much
# and the archive is byte-identical on every machine (same sha256).
#
# Usage: bench/run-tar-bench.sh [BUILD_DIR]   (default ./build)
# Environment: BENCH_DIR (default /var/tmp/deltasync-bench), REPEAT (runs
# reported per mode, default 3), TMPDIR (where temp-file mode writes).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-./build}
bench_dir=${BENCH_DIR:-/var/tmp/deltasync-bench}
repeat=${REPEAT:-3}
tarball=$bench_dir/layer.tar
# Bump when the generator changes so that an old archive is rebuilt.
generator_version=2

generate() {
  local tree=$bench_dir/tree
  rm -rf "$tree" "$tarball" "$bench_dir/stamp"
  mkdir -p "$tree"
  echo "generating tree in $tree ..."
  python3 - "$tree" <<'PY'
import base64
import os
import random
import sys

root = sys.argv[1]
rng = random.Random(20240601)


def random_bytes(n):
    out = bytearray()
    while n > 0:
        k = min(n, 1 << 20)
        out += rng.randbytes(k)
        n -= k
    return bytes(out)


def text_bytes(n):
    # Base64 lines: text-like, compresses to about 75%.
    raw = base64.encodebytes(rng.randbytes(n * 3 // 4 + 3))
    return raw[:n]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# 20,000 small files in 200 package directories.
for d in range(200):
    pkg = os.path.join(root, "usr", "lib", "app", f"pkg{d:03d}")
    if d % 20 == 0:
        # Some deep paths, longer than the 100 bytes a ustar name field holds.
        pkg = os.path.join(pkg, "node_modules", "@scope-with-a-long-name",
                           "package-with-a-rather-long-name", "dist", "esm")
    for i in range(100):
        size = rng.randint(1024, 16 * 1024)
        data = text_bytes(size) if i % 2 == 0 else random_bytes(size)
        ext = ".js" if i % 2 == 0 else ".bin"
        write(os.path.join(pkg, f"module_{i:03d}{ext}"), data)

# 200 medium files: shared libraries and assets.
for i in range(200):
    size = rng.randint(64 * 1024, 2 * 1024 * 1024)
    write(os.path.join(root, "usr", "share", "assets", f"asset_{i:03d}.dat"), random_bytes(size))

# Two large files, as a model weight or a database would be.
for i in range(2):
    path = os.path.join(root, "opt", "data", f"blob{i}.bin")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(300):
            f.write(rng.randbytes(1 << 20))

# Odd entries layers have: empty files, symlinks, hard links.
for i in range(50):
    write(os.path.join(root, "etc", "empty", f"e{i:02d}"), b"")
for i in range(50):
    os.makedirs(os.path.join(root, "usr", "bin"), exist_ok=True)
    os.symlink(f"../lib/app/pkg{i:03d}/module_001.bin", os.path.join(root, "usr", "bin", f"tool{i:02d}"))
for i in range(20):
    os.makedirs(os.path.join(root, "usr", "lib", "links"), exist_ok=True)
    os.link(os.path.join(root, "usr", "share", "assets", f"asset_{i:03d}.dat"),
            os.path.join(root, "usr", "lib", "links", f"asset_{i:03d}.dat"))
PY
  echo "packing $tarball with GNU tar ..."
  # Fixed owners, modes (via umask), mtimes and order: a reproducible archive.
  (umask 022 && chmod -R u=rwX,go=rX "$tree")
  tar --create --file="$tarball" --directory="$tree" --format=gnu --sort=name \
    --owner=0 --group=0 --numeric-owner --mtime=@1700000000 .
  rm -rf "$tree"
  echo "$generator_version" >"$bench_dir/stamp"
}

mkdir -p "$bench_dir"
if [[ ! -f $tarball || "$(cat "$bench_dir/stamp" 2>/dev/null)" != "$generator_version" ]]; then
  start=$(date +%s)
  generate
  echo "generated in $(($(date +%s) - start)) s"
fi
echo "archive: $tarball, $(stat -c %s "$tarball") bytes, sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"

if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDELTASYNC_BENCH=ON
fi
cmake --build "$build_dir" --target ds-bench-tar
bench=$build_dir/bench/ds-bench-tar

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo
"$bench" "$tarball" --warmup 1 --repeat "$repeat"
echo
"$bench" "$tarball" --warmup 1 --repeat "$repeat" --payload-to-pipe
