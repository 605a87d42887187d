#!/usr/bin/env python3
"""Renders bench/run-wire-bench.sh's JSON lines as a Markdown table.

    wire-table.py WIRE.jsonl [REVISION]

Columns without figures (no `deltasend bundle`, no `deltarecvd apply`) are n/a.
"""
import json, sys, subprocess, datetime, os, re
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rev = sys.argv[2] if len(sys.argv) > 2 else None

def b(n):
    if n < 10 * 1024:
        return "%s B" % format(n, ",")
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%s B (%.1f %s)" % (format(n, ","), n / div, unit)

def mib(kib):
    return "%d MiB" % round(kib / 1024)

def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except Exception:
        return "?"

def num(cmd):
    m = re.search(r"v?(\d+\.\d+(\.\d+)?)", ver(cmd))
    return m.group(1) if m else "?"

print("Wire bytes per image pair: %s, %d cores%s; zstd %s, rsync %s, gzip %s." % (
    datetime.date.today().isoformat(), os.cpu_count(),
    ", deltasync " + rev if rev else "", num(["zstd", "--version"]),
    num(["rsync", "--version"]), num(["gzip", "--version"])))
print()
print("| pair | new layer bytes | pull (gzip) | changed-files | rsync | zstd --patch-from (bytes, time, RSS) "
      "| deltasync --effort max (bytes, encode, RSS) | deltasync --effort default (bytes, encode, RSS) "
      "| apply of the max bundle (time, RSS) |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    cells = [r["pair"], b(r["missing_layer_bytes"]), b(r["pull_bytes"]),
             "%s (%d file%s)" % (b(r["changed_files_bytes"]), r["added_files"] + r["changed_files"],
                                "" if r["added_files"] + r["changed_files"] == 1 else "s"),
             b(r["rsync_bytes"]),
             "%s, %.1f s, %s" % (b(r["zstd_patch_bytes"]), float(r["zstd_patch_seconds"]),
                                  mib(r["zstd_patch_max_rss_kib"]))]
    for e in ("max", "default"):
        if ("bundle_%s_bytes" % e) in r:
            cells.append("%s, %.1f s, %s" % (b(r["bundle_%s_bytes" % e]), r["bundle_%s_seconds" % e],
                                              mib(r["bundle_%s_max_rss_kib" % e])))
        else:
            cells.append("n/a")
    if "apply_seconds" in r:
        cells.append("%.1f s, %s%s" % (r["apply_seconds"], mib(r["apply_max_rss_kib"]),
                                       "" if r["apply_image_id_matches"] else ", IMAGE ID DIFFERS"))
    else:
        cells.append("n/a")
    print("| " + " | ".join(cells) + " |")
