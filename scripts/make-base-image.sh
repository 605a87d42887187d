#!/usr/bin/env bash
# Builds a minimal base image with a shell, without any registry.
#
#   make-base-image.sh ENGINE_ADDRESS REF
#
# The image is one layer: /bin/busybox (the static binary of Debian's
# busybox-static package) with a symlink per applet it lists (sh, ls, rm, ln,
# mkdir, cp, cat, dd, sha256sum, find, ...), /tmp, /etc/passwd and
# /etc/group. The root filesystem is tarred deterministically (sorted names,
# mtime 0, owner root, numeric ids), so the same busybox binary always gives
# the same layer diff_id, and `docker import`-ed as REF with CMD ["/bin/sh"].
#
# Idempotent: does nothing when REF already exists in the engine.
# The docker CLI is $DELTASYNC_DOCKER_CLI, else `docker` on PATH; the busybox
# binary is $DELTASYNC_BUSYBOX, else /bin/busybox (must be statically linked:
# the image has no libc).
set -euo pipefail

die() {
  echo "make-base-image: $*" >&2
  exit 1
}

[ $# -eq 2 ] || {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
ENGINE="$1"
REF="$2"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"
BUSYBOX="${DELTASYNC_BUSYBOX:-/bin/busybox}"

command -v "$DOCKER" >/dev/null 2>&1 || die "docker CLI '$DOCKER' not found (set DELTASYNC_DOCKER_CLI)"
docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$ENGINE" "$@"; }

if docker_h image inspect --format '{{.Id}}' "$REF" >/dev/null 2>&1; then
  exit 0
fi

[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
if command -v file >/dev/null 2>&1; then
  file -L "$BUSYBOX" | grep -q 'statically linked' ||
    die "$BUSYBOX is not statically linked (install busybox-static, not busybox)"
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/make-base-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# Every applet as /bin/<name> -> busybox (all in /bin keeps PATH simple).
while IFS= read -r applet; do
  case "$applet" in
    "" | busybox | */*) continue ;;
  esac
  ln -sf busybox "$root/bin/$applet"
done < <("$BUSYBOX" --list)
for needed in sh ls rm ln mkdir cp cat echo touch head dd sha256sum find chmod mv printf true; do
  [ -L "$root/bin/$needed" ] || die "busybox at $BUSYBOX has no '$needed' applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
  -C "$root" -cf "$work/rootfs.tar" .

out="$(docker_h import --change 'CMD ["/bin/sh"]' "$work/rootfs.tar" "$REF" 2>&1)" || {
  # A concurrent run may have imported it meanwhile.
  docker_h image inspect "$REF" >/dev/null 2>&1 && exit 0
  die "docker import $REF failed: $out"
}
docker_h image inspect --format '{{.Id}}' "$REF" >/dev/null 2>&1 ||
  die "docker import $REF reported success but the image is missing: $out"
