#!/usr/bin/env python3
"""The least a one-round librsync exchange can cost for an image pair.

    rsync-floor.py OLD.tar NEW.tar   (docker save archives; apt-get install rdiff zstd)

For every regular file in NEW's missing layers whose path exists in OLD with
other content, it tries block sizes 64 B .. 16 KiB (librsync's minimum safe
strong sum, `rdiff -S -1`) and keeps, with hindsight, the cheapest
signature + `zstd -19` of the delta. The sum is a floor for any remote mode
that sends one signature per basis file and one librsync delta per new file,
whatever rule picks the block size: deltasend's remote mode is such a mode
(BENCHMARKS.md, "Daemon transfer"). Files without a same-path basis are left
out, so the true floor is higher. Prints one JSON line.
"""
import json, os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from changed_files import changed_files  # noqa: E402

BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

if len(sys.argv) != 3:
    sys.exit("usage: rsync-floor.py OLD.tar NEW.tar   (docker save archives)")
for tool in ("rdiff", "zstd"):
    if shutil.which(tool) is None:
        sys.exit("rsync-floor: %s is not installed (apt-get install rdiff zstd)" % tool)


def cheapest(work, base, data):
    """Signature + zstd'd delta at the best block size, chosen with hindsight."""
    paths = {name: os.path.join(work, name) for name in "onsd"}
    with open(paths["o"], "wb") as f:
        f.write(base)
    with open(paths["n"], "wb") as f:
        f.write(data)
    best = None
    for block in BLOCK_SIZES:
        if block > max(len(base), 64):
            break
        subprocess.run(["rdiff", "-f", "-b", str(block), "-S", "-1", "signature",
                        paths["o"], paths["s"]], check=True)
        subprocess.run(["rdiff", "-f", "delta", paths["s"], paths["n"], paths["d"]], check=True)
        delta = subprocess.run(["zstd", "-19", "-q", "-c", "--no-check", paths["d"]],
                               capture_output=True, check=True).stdout
        cost = os.path.getsize(paths["s"]) + len(delta)
        best = cost if best is None else min(best, cost)
    return best


files = floor = 0
with tempfile.TemporaryDirectory(prefix="rsync-floor-") as work:
    for _, base, data in changed_files(sys.argv[1], sys.argv[2], "rsync-floor"):
        files += 1
        floor += cheapest(work, base, data)
print(json.dumps({"files": files, "oracle_bytes": floor}))
