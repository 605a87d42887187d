#!/usr/bin/env python3
"""Writes the changed files of an image pair as N.old / N.new pairs.

    extract-changed-files.py OLD.tar NEW.tar DIR   (docker save archives)

Every regular file in NEW's missing layers whose path exists in OLD with other
content: the input of ds-bench-rounds (bench/signature_rounds_bench.cpp),
which measures what remote mode's signatures and deltas cost for them.
"""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from changed_files import changed_files  # noqa: E402

if len(sys.argv) != 4:
    sys.exit("usage: extract-changed-files.py OLD.tar NEW.tar DIR   (docker save archives)")
out = sys.argv[3]
os.makedirs(out, exist_ok=True)
count = 0
for _, base, data in changed_files(sys.argv[1], sys.argv[2], "extract-changed-files"):
    for suffix, content in (("old", base), ("new", data)):
        with open(os.path.join(out, "%d.%s" % (count, suffix)), "wb") as f:
            f.write(content)
    count += 1
print(json.dumps({"files": count, "dir": out}))
