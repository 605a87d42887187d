#!/usr/bin/env bash
# Baseline wire sizes for one image pair (OLD already at the receiver, NEW to
# be shipped), all measured on the same images:
#
#   measure.sh ENGINE_ADDRESS OLD NEW WORKDIR [PAIR_NAME]
#
# Prints one JSON object on one line:
#   pair, old, new             names / tags
#   new_layers, missing_layers layer counts of NEW, and of those not in OLD
#   missing_layer_bytes        raw (uncompressed tar) bytes of the missing layers
#   pull_bytes                 sum of `gzip -6 -n` of each missing layer tar:
#                              what a registry pull moves (config and
#                              manifest, a few KiB, not counted)
#   changed_files_bytes        `tar | gzip -6 -n` of only the added and changed
#                              files of NEW's root filesystem (regular files,
#                              symlinks, new directories; mtime-, mode- or
#                              owner-only changes not included) plus a
#                              ".removed" list of removed paths: the
#                              docker-diff-based-layers approach. It carries
#                              no image metadata and cannot rebuild the layers.
#   changed_files, added_files, removed_files   counts behind it
#   changed_files_source       "deltasend" ($DELTASEND diff --json) or
#                              "rootfs" (comparison of the unpacked trees)
#   rsync_bytes                "Total bytes sent" + "Total bytes received" of
#                              the cheapest rsync that leaves the copy equal
#                              to NEW: `rsync -a --no-whole-file -z --delete
#                              --stats` from NEW's unpacked root filesystem
#                              onto a copy of OLD's (both from docker create
#                              + export) when that is exact, else the same
#                              with --checksum. Plain -a trusts size + mtime
#                              (its quick check) and skips a changed file of
#                              the same size and mtime; images built with
#                              fixed mtimes (os-update: 0 everywhere) have
#                              many, and rsync then leaves them stale;
#   rsync_sent, rsync_received, rsync_seconds, rsync_mode ("quick-check" or
#                              "checksum"): of the run rsync_bytes counts
#   rsync_quick_bytes, rsync_quick_stale_files   plain -a: bytes, and files
#                              (regular files, symlinks) of NEW it left
#                              different or missing
#   rsync_checksum_bytes, rsync_checksum_sent, rsync_checksum_received
#                              the --checksum run (always exact: checked)
#   zstd_patch_bytes           `zstd -19 --long=31 --patch-from=OLD_LAYERS`
#                              of the missing layers, where OLD_LAYERS is the
#                              concatenation of OLD's layer tars (in order) and
#                              the input the concatenation of NEW's missing
#                              layer tars; zstd_patch_seconds (wall),
#                              zstd_patch_max_rss_kib (from /usr/bin/time)
#
# Needs: docker CLI ($DELTASYNC_DOCKER_CLI), python3, gzip, tar, rsync, zstd,
# /usr/bin/time (Debian package `time`). Root (unpacking root filesystems
# keeps owners and device nodes). Scratch space in WORKDIR: about 4x the
# images' size; removed at the end unless BENCH_KEEP=1.
set -euo pipefail
umask 022

if [ $# -lt 4 ] || [ $# -gt 5 ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
ENGINE="$1"
OLD="$2"
NEW="$3"
WORK_ROOT="$4"
PAIR="${5:-$NEW}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"

die() {
  echo "measure: $PAIR: $*" >&2
  exit 1
}
for c in "$DOCKER" python3 gzip tar rsync zstd; do
  command -v "$c" >/dev/null 2>&1 || die "'$c' not found (run scripts/install-deps.sh)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$ENGINE" "$@"; }

docker_h image inspect "$OLD" >/dev/null 2>&1 || die "image $OLD not in the engine"
docker_h image inspect "$NEW" >/dev/null 2>&1 || die "image $NEW not in the engine"

mkdir -p "$WORK_ROOT"
M="$(mktemp -d "$(cd "$WORK_ROOT" && pwd)/measure.XXXXXX")"
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do docker_h rm -f "$c" >/dev/null 2>&1 || true; done
  if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$M"; fi
}
trap cleanup EXIT

# --- Layers: one `docker save` of both images (shared layers once). ---------
mkdir -p "$M/save"
docker_h save "$OLD" "$NEW" | tar -x -C "$M/save" || die "docker save failed"
python3 - "$M/save" "$OLD" "$NEW" "$M" <<'PY' || exit 1
import json, os, sys
save, old, new, m = sys.argv[1:5]
manifest = json.load(open(os.path.join(save, "manifest.json")))

def norm(ref):
    # docker save writes RepoTags with the tag spelled out.
    return ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"

def find(ref):
    for e in manifest:
        if norm(ref) in (e.get("RepoTags") or []):
            return e
    sys.exit("measure: %s not in docker save's manifest.json" % ref)

def diff_ids(e):
    cfg = json.load(open(os.path.join(save, e["Config"])))
    ids = cfg["rootfs"]["diff_ids"]
    if len(ids) != len(e["Layers"]):
        sys.exit("measure: layer count mismatch in %s" % e["Config"])
    return list(zip(ids, e["Layers"]))

o, n = diff_ids(find(old)), diff_ids(find(new))
have = {d for d, _ in o}
with open(os.path.join(m, "old-layers"), "w") as f:
    for _, p in o:
        f.write(os.path.join(save, p) + "\n")
seen = set()
with open(os.path.join(m, "missing-layers"), "w") as f:
    for d, p in n:
        if d not in have and d not in seen:
            seen.add(d)
            f.write(os.path.join(save, p) + "\n")
with open(os.path.join(m, "new-layer-count"), "w") as f:
    f.write(str(len(n)))
PY
mapfile -t old_layers <"$M/old-layers"
mapfile -t missing <"$M/missing-layers"

missing_bytes=0
pull_bytes=0
for l in "${missing[@]}"; do
  missing_bytes=$((missing_bytes + $(stat -c %s "$l")))
  pull_bytes=$((pull_bytes + $(gzip -6 -n -c "$l" | wc -c)))
done

# --- zstd --patch-from: missing new layers against all old layers. ----------
zstd_bytes=0 zstd_secs=0 zstd_rss=0
if [ "${#missing[@]}" -gt 0 ]; then
  cat "${old_layers[@]}" >"$M/old-layers.tar"
  cat "${missing[@]}" >"$M/new-layers.tar"
  ref_size="$(stat -c %s "$M/old-layers.tar")"
  [ "$ref_size" -lt $((2 << 30)) ] || die "old layers are $ref_size bytes, over zstd's 2 GiB --long=31 window"
  # --patch-from needs the window (--long=31: 2 GiB) to cover the reference;
  # compression memory is then about the reference plus level 19's tables.
  /usr/bin/time -f '%e %M' -o "$M/zstd.time" \
    zstd -q -19 --long=31 --patch-from="$M/old-layers.tar" "$M/new-layers.tar" -o "$M/patch.zst" \
    2>"$M/zstd.err" || die "zstd --patch-from failed: $(tail -n 3 "$M/zstd.err")"
  zstd_bytes="$(stat -c %s "$M/patch.zst")"
  read -r zstd_secs zstd_rss <"$M/zstd.time"
  rm -f "$M/old-layers.tar" "$M/new-layers.tar" "$M/patch.zst"
fi
rm -rf "$M/save"

# --- Root filesystems: docker create + export + tar -x. ---------------------
unpack() { # IMAGE DIR
  local id
  id="$(docker_h create "$1")" || die "docker create $1 failed"
  containers+=("$id")
  mkdir -p "$2"
  docker_h export "$id" | tar -x --numeric-owner -p -C "$2" || die "docker export of $1 failed"
  docker_h rm -f "$id" >/dev/null
}
unpack "$OLD" "$M/old-root"
unpack "$NEW" "$M/new-root"

# --- changed-files: tar+gzip of added and changed files. --------------------
if [ -n "${DELTASEND:-}" ]; then
  [ -x "$DELTASEND" ] || die "DELTASEND=$DELTASEND is not executable"
  "$DELTASEND" --engine "$ENGINE" diff --json "$OLD" "$NEW" >"$M/diff.json" ||
    die "$DELTASEND diff failed"
  source=deltasend
else
  source=rootfs
fi
python3 - "$M" "$source" <<'PY' || exit 1
import json, os, stat, sys, filecmp
m, source = sys.argv[1], sys.argv[2]
old_root, new_root = os.path.join(m, "old-root"), os.path.join(m, "new-root")
added, changed, removed = [], [], []
if source == "deltasend":
    d = json.load(open(os.path.join(m, "diff.json")))
    added = [e["path"].lstrip("/") for e in d["added"]]
    changed = [e["path"].lstrip("/") for e in d["changed"]]
    removed = [e["path"].lstrip("/") for e in d["removed"]]
else:
    def walk(root):
        out = {}
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                out[os.path.relpath(p, root)] = os.lstat(p)
        return out
    o, n = walk(old_root), walk(new_root)
    for path, st in sorted(n.items()):
        if path not in o:
            added.append(path)
            continue
        so = o[path]
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(so.st_mode):
            changed.append(path)
        elif stat.S_ISLNK(st.st_mode):
            if os.readlink(os.path.join(new_root, path)) != os.readlink(os.path.join(old_root, path)):
                changed.append(path)
        elif stat.S_ISREG(st.st_mode):
            if st.st_size != so.st_size or not filecmp.cmp(
                    os.path.join(new_root, path), os.path.join(old_root, path), shallow=False):
                changed.append(path)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            if st.st_rdev != so.st_rdev:
                changed.append(path)
    removed = sorted(p for p in o if p not in n)
    # A removed directory implies its contents: list only the top.
    top = []
    for p in removed:
        if not top or not p.startswith(top[-1] + "/"):
            top.append(p)
    removed = top
with open(os.path.join(m, "send.list"), "wb") as f:
    for p in added + changed:
        f.write(p.encode() + b"\0")
os.makedirs(os.path.join(m, "meta"), exist_ok=True)
with open(os.path.join(m, "meta", ".removed"), "w") as f:
    for p in removed:
        f.write("/" + p + "\n")
json.dump({"added": len(added), "changed": len(changed), "removed": len(removed)},
          open(os.path.join(m, "counts.json"), "w"))
PY
changed_bytes="$( (tar --no-recursion --null --numeric-owner -C "$M/new-root" -T "$M/send.list" -cf - &&
  tar -C "$M/meta" -cf - .removed) | gzip -6 -n -c | wc -c)"

# --- rsync of the unpacked root filesystems (delta algorithm on). -----------
# rsync_run NAME ARGS...: rsync NEW's root onto a fresh copy of OLD's, then
# sets NAME_sent, NAME_recv, NAME_secs and NAME_stale (files of NEW the copy
# does not equal afterwards).
rsync_run() {
  local name="$1" start end sent recv stale
  shift
  rm -rf "$M/dst-root"
  cp -a "$M/old-root" "$M/dst-root"
  start="$(date +%s.%N)"
  rsync -a --no-whole-file -z --delete --stats "$@" "$M/new-root/" "$M/dst-root/" >"$M/rsync-$name.out" \
    2>"$M/rsync-$name.err" || die "rsync $* failed: $(tail -n 3 "$M/rsync-$name.err")"
  end="$(date +%s.%N)"
  sent="$(sed -n 's/^Total bytes sent: *//p' "$M/rsync-$name.out" | tr -d ',')"
  recv="$(sed -n 's/^Total bytes received: *//p' "$M/rsync-$name.out" | tr -d ',')"
  [ -n "$sent" ] && [ -n "$recv" ] || die "cannot parse rsync --stats output"
  stale="$(python3 - "$M/new-root" "$M/dst-root" <<'PY'
import filecmp, os, sys
new, dst = sys.argv[1], sys.argv[2]
stale = 0
for d, _, files in os.walk(new):
    for f in files:
        p = os.path.join(d, f)
        q = os.path.join(dst, os.path.relpath(p, new))
        if os.path.islink(p):
            stale += not (os.path.islink(q) and os.readlink(p) == os.readlink(q))
        elif os.path.isfile(p):
            stale += not (os.path.isfile(q) and not os.path.islink(q) and filecmp.cmp(p, q, shallow=False))
print(stale)
PY
)"
  printf -v "${name}_sent" %s "$sent"
  printf -v "${name}_recv" %s "$recv"
  printf -v "${name}_secs" %s "$(python3 -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))' "$start" "$end")"
  printf -v "${name}_stale" %s "$stale"
}
quick_sent="" quick_recv="" quick_secs="" quick_stale=""
checksum_sent="" checksum_recv="" checksum_secs="" checksum_stale=""
rsync_run quick
rsync_run checksum --checksum
rm -rf "$M/old-root" "$M/dst-root"
[ "$checksum_stale" = 0 ] || die "rsync --checksum left $checksum_stale files different from NEW"
if [ "$quick_stale" = 0 ]; then
  rsync_mode=quick-check rsync_sent=$quick_sent rsync_recv=$quick_recv rsync_secs=$quick_secs
else
  echo "measure: $PAIR: rsync -a left $quick_stale changed files stale (same size and mtime); rsync_bytes is the --checksum run" >&2
  rsync_mode=checksum rsync_sent=$checksum_sent rsync_recv=$checksum_recv rsync_secs=$checksum_secs
fi

python3 - "$M/counts.json" <<PY
import json, sys
c = json.load(open(sys.argv[1]))
print(json.dumps({
    "pair": "$PAIR", "old": "$OLD", "new": "$NEW",
    "new_layers": int(open("$M/new-layer-count").read()),
    "missing_layers": ${#missing[@]},
    "missing_layer_bytes": $missing_bytes,
    "pull_bytes": $pull_bytes,
    "changed_files_bytes": $changed_bytes,
    "changed_files": c["changed"], "added_files": c["added"], "removed_files": c["removed"],
    "changed_files_source": "$source",
    "rsync_bytes": $rsync_sent + $rsync_recv,
    "rsync_sent": $rsync_sent, "rsync_received": $rsync_recv,
    "rsync_seconds": $rsync_secs, "rsync_mode": "$rsync_mode",
    "rsync_quick_bytes": $quick_sent + $quick_recv, "rsync_quick_stale_files": $quick_stale,
    "rsync_checksum_bytes": $checksum_sent + $checksum_recv,
    "rsync_checksum_sent": $checksum_sent, "rsync_checksum_received": $checksum_recv,
    "zstd_patch_bytes": $zstd_bytes,
    "zstd_patch_seconds": $zstd_secs,
    "zstd_patch_max_rss_kib": $zstd_rss,
}))
PY
