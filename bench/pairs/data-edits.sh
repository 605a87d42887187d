#!/usr/bin/env bash
# Pair "data-edits": one large data file (200 MiB of seeded, log-like CSV
# text: gzip -6 shrinks it about 2.1x) that gets scattered edits and an insertion.
# NEW: 40 overwrites of 16..400 bytes at seeded offsets, one 256 KiB block of
# new lines inserted at 45% of the file, and a 1 MiB append.
# Usage: data-edits.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
# BENCH_DATA_MIB overrides the size (default 200).
source "$(dirname "$0")/_common.sh"
ensure_base

SIZE_MIB="${BENCH_DATA_MIB:-200}"
rm -rf "$W/old" "$W/new"
mkdir -p "$W/old" "$W/new"
python3 - "$W/old/events.csv" "$W/new/events.csv" "$SIZE_MIB" <<'PY'
import random, sys
old_path, new_path, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = mib << 20
r = random.Random(2024)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(r.choice(letters) for _ in range(r.randint(2, 10))) for _ in range(4000)]
levels = ["INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"]

def lines(rng, n_bytes, t0):
    out, total, t = [], 0, t0
    while total < n_bytes:
        t += rng.randint(0, 3)
        words = " ".join(rng.choices(vocab, k=rng.randint(4, 14)))
        line = "%d,%s,user%05d,%08x,%s\n" % (t, rng.choice(levels), rng.randint(0, 99999),
                                             rng.getrandbits(32), words)
        out.append(line)
        total += len(line)
    return "".join(out).encode(), t

chunks, t = [], 1_600_000_000
while sum(map(len, chunks)) < size:
    c, t = lines(r, 4 << 20, t)
    chunks.append(c)
data = bytearray(b"".join(chunks)[:size])
open(old_path, "wb").write(data)

e = random.Random(99)
for _ in range(40):
    n = e.randint(16, 400)
    off = e.randrange(0, len(data) - n)
    data[off:off + n] = bytes(e.choice(b"0123456789abcdef") for _ in range(n))
ins, _ = lines(e, 256 << 10, 1_700_000_000)
at = int(len(data) * 0.45)
data[at:at] = ins
app, _ = lines(e, 1 << 20, 1_800_000_000)
data += app
open(new_path, "wb").write(data)
PY
set_mtimes "$W/old" "$T_OLD"
set_mtimes "$W/new" "$T_NEW"

DF="FROM $BASE_IMAGE
COPY events.csv /data/events.csv"
build "$W/old" "$OLD_TAG" "$DF"
build "$W/new" "$NEW_TAG" "$DF"
done_ok
