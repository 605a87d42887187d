#!/usr/bin/env bash
# Pair "app-zeros": the docker-diff-based-layers sample app. `COPY . /app`
# of five large zero-filled files (8 MiB each) and three small text files.
# NEW: large2 grows by 1 MiB (still zeros), large4 is zero-filled with one
# 4 KiB run of ones at 5 MiB, small1 is changed, large5 is deleted.
# Usage: app-zeros.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
ensure_base

MiB=$((1024 * 1024))
rm -rf "$W/old" "$W/new"
mkdir -p "$W/old"
for i in 1 2 3 4 5; do
  truncate -s $((8 * MiB)) "$W/old/large$i.bin"
done
for i in 1 2 3; do
  printf 'small file %s of the sample app\nversion=1.0.0\n' "$i" >"$W/old/small$i.txt"
done
cp -a "$W/old" "$W/new"
truncate -s $((9 * MiB)) "$W/new/large2.bin"
printf '\377%.0s' $(seq 4096) | dd of="$W/new/large4.bin" bs=4096 seek=$((5 * 256)) conv=notrunc status=none
printf 'small file 1 of the sample app\nversion=2.0.0\nfeature=on\n' >"$W/new/small1.txt"
rm "$W/new/large5.bin"
# Sparse holes are read back as zeros; the layer tar stores the data in full.
set_mtimes "$W/old" "$T_OLD"
set_mtimes "$W/new" "$T_NEW"
# Unchanged files keep their OLD mtime, as a checkout of the same file would.
for f in large1.bin large3.bin small2.txt small3.txt; do touch -h -d "@$T_OLD" "$W/new/$f"; done

DF="FROM $BASE_IMAGE
COPY . /app"
build "$W/old" "$OLD_TAG" "$DF"
build "$W/new" "$NEW_TAG" "$DF"
done_ok
