#!/usr/bin/python3
"""Do librsync literals compress better with the rebuilt bytes before them?

    literal-context.py [--min-block N] OLD.tar NEW.tar   (docker save archives)
    literal-context.py [--min-block N] OLD_DIR NEW_DIR   (unpacked trees)
    (apt-get install rdiff python3-zstandard; Debian's /usr/bin/python3)

rsync's zlib token coding (token.c, Z_INSERT_ONLY) puts the matched blocks
into the deflate history, so a literal run compresses against the bytes just
before it in the rebuilt file, which both sides hold. deltasend's REMOTE
stream instead compresses the literal runs of all files as one zstd stream
(level 9 at default effort). This measures both on the changed files of a
pair (same path, other content; as rsync-floor.py): one-round librsync deltas
at deltasend's one-round block size (~sqrt(size), at least --min-block, by
default 1024 as choose_signature_params; 256 before 2026-12-03), then the
literal runs' bytes coded

  alone-one-stream-L*     all runs of all files in one zstd stream (today);
  prefixNK-L*             each run as its own zstd frame (magicless, no
                          checksum, no dictionary ID; a run is stored raw + 1
                          byte when that is smaller), its prefix the N KiB of
                          the new file before it (matched and literal bytes);
  hist1M+prefix1M-L*      the same, the prefix also holding the last 1 MiB of
                          literal bytes before the run (the stream's history).

Prints one line per coding: total bytes. Slow at level 19 (minutes).
"""
import math, os, shutil, subprocess, sys, tempfile

try:
    import zstandard as zstd
except ImportError:
    sys.exit("literal-context: needs python3-zstandard (apt-get install python3-zstandard; "
             "run with /usr/bin/python3)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from changed_files import changed_files  # noqa: E402

WINDOWS = (128 << 10, 1 << 20)
LEVELS = (9, 19)


def block_len(size, floor):
    """deltasend's one-round block size (choose_signature_params)."""
    return min(max((int(math.sqrt(size)) + 64) // 128 * 128, floor), 65536)


def literal_runs(delta):
    """(new-file offset, length) of the literal runs of a librsync delta."""
    at, pos, runs = 4, 0, []
    while True:
        op = delta[at]
        at += 1
        if op == 0:
            return runs
        if op <= 64 or 0x41 <= op < 0x45:
            n = op
            if op > 64:
                width = 1 << (op - 0x41)
                n = int.from_bytes(delta[at:at + width], "big")
                at += width
            if runs and runs[-1][0] + runs[-1][1] == pos:
                runs[-1][1] += n
            else:
                runs.append([pos, n])
            at += n
        else:
            code = op - 0x45
            at += (1 << (code // 4)) + (1 << (code % 4))
            n = int.from_bytes(delta[at - (1 << (code % 4)):at], "big")
        pos += n


def tree_pairs(old, new):
    for d, _, files in os.walk(new):
        for f in files:
            p = os.path.join(d, f)
            q = os.path.join(old, os.path.relpath(p, new))
            if os.path.islink(p) or os.path.islink(q) or not os.path.isfile(q):
                continue
            with open(q, "rb") as a, open(p, "rb") as b:
                base, data = a.read(), b.read()
            if len(data) >= 64 and base != data:
                yield p, base, data


def framed(data, prefix, level):
    params = dict(source_size=len(data), format=zstd.FORMAT_ZSTD1_MAGICLESS, write_checksum=0,
                  write_dict_id=0, write_content_size=1)
    if prefix:
        cp = zstd.ZstdCompressionParameters.from_level(level, dict_size=len(prefix), **params)
        dictionary = zstd.ZstdCompressionDict(prefix, dict_type=zstd.DICT_TYPE_RAWCONTENT)
        c = zstd.ZstdCompressor(dict_data=dictionary, compression_params=cp)
    else:
        c = zstd.ZstdCompressor(
            compression_params=zstd.ZstdCompressionParameters.from_level(level, **params))
    return min(len(c.compress(data)), len(data) + 1)


def main():
    args = sys.argv[1:]
    floor = 1024
    if len(args) == 4 and args[0] == "--min-block" and args[1].isdigit():
        floor, args = int(args[1]), args[2:]
    if len(args) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    if shutil.which("rdiff") is None:
        sys.exit("literal-context: rdiff is not installed (apt-get install rdiff)")
    old, new = args
    pairs = (tree_pairs(old, new) if os.path.isdir(old) else
             changed_files(old, new, "literal-context"))
    literals = bytearray()
    totals = {}
    files = runs = 0
    with tempfile.TemporaryDirectory(prefix="literal-context-") as work:
        o, n, s, d = (os.path.join(work, x) for x in "onsd")
        for _, base, data in pairs:
            files += 1
            with open(o, "wb") as f:
                f.write(base)
            with open(n, "wb") as f:
                f.write(data)
            subprocess.run(["rdiff", "-f", "-b", str(block_len(len(base), floor)), "-S", "12",
                            "signature", o, s], check=True)
            subprocess.run(["rdiff", "-f", "delta", s, n, d], check=True)
            with open(d, "rb") as f:
                delta = f.read()
            for pos, length in literal_runs(delta):
                runs += 1
                run = data[pos:pos + length]
                literals += run
                for level in LEVELS:
                    for window in WINDOWS:
                        key = "prefix%dK-L%d" % (window >> 10, level)
                        totals[key] = totals.get(key, 0) + framed(
                            run, data[max(0, pos - window):pos], level)
                    history = bytes(literals[max(0, len(literals) - length - (1 << 20)):
                                             len(literals) - length])
                    key = "hist1M+prefix1M-L%d" % level
                    totals[key] = totals.get(key, 0) + framed(
                        run, history + data[max(0, pos - (1 << 20)):pos], level)
    print("changed files %d, literal runs %d, literal bytes %d" % (files, runs, len(literals)))
    for level in LEVELS:
        print("alone-one-stream-L%d %d" % (
            level, len(zstd.ZstdCompressor(level=level).compress(bytes(literals)))))
    for key in sorted(totals):
        print(key, totals[key])


main()
