#!/usr/bin/env bash
# Makes layer_basis_0.tar and layer_basis_1.tar, the two base layers the
# fuzz_layer_stream target decodes against (tests/fuzz/fuzz_layer_stream.cpp).
# They are checked in, not made at build time: the layer-stream seeds and
# regression files are zstd-compressed with these layers' headers as the
# dictionary, so they only mean the same thing against these exact bytes.
# Run it only to change the basis; then regenerate the corpora (scripts/fuzz.sh)
# and expect tests/fuzz/regressions/layer_stream/ files to need remaking.
#   tests/fuzz/data/make-layer-basis.sh   (GNU tar; output next to this script)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Deterministic contents: text, pseudo-random bytes (awk's rand with a seed).
text() { awk -v n="$1" -v s="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "line %d of %d: %c%c%c settings=%d\n", i, n, 97 + int(rand() * 26), 97 + int(rand() * 26), 97 + int(rand() * 26), int(rand() * 1000) }'; }
bytes() { awk -v n="$1" -v s="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%c", 1 + int(rand() * 255) }' LC_ALL=C; }

tar_opts=(--sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00:00Z')

# Layer 0: GNU format (long names as 'L' records), links, an empty file.
l0="$work/l0"
mkdir -p "$l0/app/bin" "$l0/app/lib" "$l0/app/data" "$l0/app/etc"
text 40 1 >"$l0/app/etc/config.txt"
LC_ALL=C bytes 12000 2 >"$l0/app/bin/tool"
text 300 3 >"$l0/app/data/notes.txt"
LC_ALL=C bytes 3000 4 >"$l0/app/lib/libx.so.1"
ln -s libx.so.1 "$l0/app/lib/libx.so"
ln "$l0/app/bin/tool" "$l0/app/bin/tool-link"
: >"$l0/app/empty"
long="$l0/app/data/a-directory-name-that-is-long-enough/to-need-a-gnu-long-name-record-in-the-header"
mkdir -p "$long"
text 20 5 >"$long/file-with-a-long-path.txt"
cp "$l0/app/lib/libx.so.1" "$l0/app/data/libx-copy.bin"
chmod 0755 "$l0/app/bin/tool"
tar --format=gnu "${tar_opts[@]}" -C "$l0" -cf "$here/layer_basis_0.tar" app

# Layer 1: POSIX (PAX) format, changes and hides files of layer 0.
l1="$work/l1"
mkdir -p "$l1/app/etc" "$l1/app/data" "$l1/app/share"
text 42 11 >"$l1/app/etc/config.txt"
text 120 12 >"$l1/app/share/readme.md"
: >"$l1/app/data/.wh.notes.txt"
tar --format=posix --pax-option=delete=atime,delete=ctime "${tar_opts[@]}" -C "$l1" -cf "$here/layer_basis_1.tar" app
ls -l "$here"/layer_basis_*.tar
