#!/usr/bin/env python3
"""Writes the changed files of an image pair as N.old / N.new pairs.

    extract-changed-files.py OLD.tar NEW.tar DIR   (docker save archives)

Every regular file in NEW's missing layers whose path exists in OLD with other
content: the input of ds-bench-rounds (bench/signature_rounds_bench.cpp),
which measures what remote mode's signatures and deltas cost for them.
"""
import json, os, sys, tarfile

if len(sys.argv) != 4:
    sys.exit("usage: extract-changed-files.py OLD.tar NEW.tar DIR   (docker save archives)")


def open_archive(path):
    try:
        archive = tarfile.open(path)
        return archive, json.load(archive.extractfile("manifest.json"))[0]["Layers"]
    except (OSError, tarfile.TarError, KeyError, ValueError) as e:
        sys.exit("extract-changed-files: %s is not a docker save archive: %s" % (path, e))


old_archive, old_layers = open_archive(sys.argv[1])
new_archive, new_layers = open_archive(sys.argv[2])
out = sys.argv[3]
os.makedirs(out, exist_ok=True)
old_files = {}
for layer in old_layers:
    layer_tar = tarfile.open(fileobj=old_archive.extractfile(layer))
    for member in layer_tar:
        if member.isfile():
            old_files[member.name] = layer_tar.extractfile(member).read()
count = 0
for layer in (l for l in new_layers if l not in old_layers):
    layer_tar = tarfile.open(fileobj=new_archive.extractfile(layer))
    for member in layer_tar:
        if not member.isfile():
            continue
        data = layer_tar.extractfile(member).read()
        base = old_files.get(member.name)
        if base is None or base == data or len(data) < 64:
            continue
        for suffix, content in (("old", base), ("new", data)):
            with open(os.path.join(out, "%d.%s" % (count, suffix)), "wb") as f:
                f.write(content)
        count += 1
print(json.dumps({"files": count, "dir": out}))
