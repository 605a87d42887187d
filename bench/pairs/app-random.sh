#!/usr/bin/env bash
# Pair "app-random": the docker-diff-based-layers sample shape with random
# content. `COPY . /app` of five large pseudo-random files (16 MiB each,
# seeded) and three small text files.
# NEW: large3 has five scattered edits (64..4096 bytes overwritten, one
# 1000-byte insertion), small2 is changed, small3 is deleted, new.txt added.
# Usage: app-random.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
ensure_base

MiB=$((1024 * 1024))
rm -rf "$W/old" "$W/new"
mkdir -p "$W/old"
for i in 1 2 3 4 5; do
  random_file "$W/old/large$i.bin" $((16 * MiB)) "$((1000 + i))"
done
for i in 1 2 3; do
  printf 'small file %s of the sample app\nversion=1.0.0\n' "$i" >"$W/old/small$i.txt"
done
cp -a "$W/old" "$W/new"
python3 - "$W/new/large3.bin" <<'PY'
import random, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
r = random.Random(77)
# Overwrites at fixed offsets, then one insertion (shifts everything after it).
for off, n in ((4096, 64), (3_000_000, 512), (7_777_777, 4096), (12_000_000, 100)):
    b[off:off + n] = r.randbytes(n)
b[9_000_000:9_000_000] = r.randbytes(1000)
open(p, "wb").write(b)
PY
printf 'small file 2 of the sample app\nversion=2.0.0\nfeature=on\n' >"$W/new/small2.txt"
rm "$W/new/small3.txt"
printf 'a file added in 2.0.0\n' >"$W/new/new.txt"
set_mtimes "$W/old" "$T_OLD"
set_mtimes "$W/new" "$T_NEW"
for f in large1.bin large2.bin large4.bin large5.bin small1.txt; do touch -h -d "@$T_OLD" "$W/new/$f"; done

DF="FROM $BASE_IMAGE
COPY . /app"
build "$W/old" "$OLD_TAG" "$DF"
build "$W/new" "$NEW_TAG" "$DF"
done_ok
