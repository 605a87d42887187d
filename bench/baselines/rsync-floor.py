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
import json, os, subprocess, sys, tarfile, tempfile
old_ar, new_ar = sys.argv[1], sys.argv[2]
def layers(ar):
    t = tarfile.open(ar)
    m = json.load(t.extractfile("manifest.json"))[0]["Layers"]
    return t, m
ot, ol = layers(old_ar); nt, nl = layers(new_ar)
old_files = {}
for l in ol:
    lt = tarfile.open(fileobj=ot.extractfile(l))
    for m in lt:
        if m.isfile(): old_files[m.name] = lt.extractfile(m).read()
missing = [l for l in nl if l not in ol]
d = tempfile.mkdtemp()
tot_best = 0; tot_default = 0; n = 0; lit = 0
for l in missing:
    lt = tarfile.open(fileobj=nt.extractfile(l))
    for m in lt:
        if not m.isfile(): continue
        data = lt.extractfile(m).read()
        base = old_files.get(m.name)
        if base is None or base == data or len(data) < 64: continue
        n += 1
        open(d+"/o","wb").write(base); open(d+"/n","wb").write(data)
        best = None
        for b in (64,128,256,512,1024,2048,4096,8192,16384):
            if b > max(len(base), 64): break
            subprocess.run(["rdiff","-f","-b",str(b),"-S","-1","signature",d+"/o",d+"/s"],check=True)
            subprocess.run(["rdiff","-f","delta",d+"/s",d+"/n",d+"/d"],check=True)
            z = subprocess.run(["zstd","-19","-q","-c","--no-check",d+"/d"],capture_output=True).stdout
            cost = os.path.getsize(d+"/s") + len(z)
            if best is None or cost < best: best = cost
        tot_best += best
print(json.dumps({"files": n, "oracle_bytes": tot_best}))
