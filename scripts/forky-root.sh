#!/usr/bin/env bash
# The newer engines sites run (Debian forky: dockerd 28.5 with the classic or
# the containerd image store, containerd 2.x, Podman 5, buildx) in a chroot,
# for the engine matrix of the tests and for benchmarks.
#
#   forky-root.sh setup          make the chroot once (debootstrap), then mount
#   forky-root.sh mount          bind what engines need (idempotent)
#   forky-root.sh umount         undo every mount under the chroot
#   forky-root.sh path           print the chroot's directory
#   forky-root.sh go             print the path of forky's go binary
#   forky-root.sh run CMD...     run CMD inside the chroot, in the same working
#                                directory (which must be under a bound path)
#
# The chroot is ${DELTASYNC_FORKY_ROOT:-/var/lib/deltasync-forky}; a marker
# file (.deltasync-ready) says it is complete, so an interrupted debootstrap
# is started over. The mirror is the one this machine's apt uses.
#
# Mounts, in order (the chroot's own bind first: dockerd remounts / and looks
# its data-root up in /proc/self/mountinfo): ROOT onto itself, /proc, /dev,
# /dev/pts, /sys (rbind, rslave), and each shared folder onto the same path
# inside (DELTASYNC_FORKY_SHARE, colon-separated; default /var/tmp:/tmp), so
# sockets, engine state and build contexts have one path inside and out.
#
# Needs root, debootstrap (installed by scripts/install-deps.sh).
set -euo pipefail

FROOT="${DELTASYNC_FORKY_ROOT:-/var/lib/deltasync-forky}"
SHARE="${DELTASYNC_FORKY_SHARE:-/var/tmp:/tmp}"
# golang-go: forky's Go builds the deltasync-gzip helper that rebuilds the
# blobs forky's BuildKit writes (cmake/GoGzipHelpers.cmake, docs/engines.md).
PACKAGES="docker.io,docker-cli,docker-buildx,containerd,podman,runc,crun,conmon,uidmap,catatonit,ca-certificates,iproute2,procps,tar,gzip,zstd,curl,golang-go"

die() {
  echo "forky-root: $*" >&2
  exit 1
}

mirror() {
  local m
  m="$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -v security | head -n1 | tr -d ' ')" || true
  echo "${m:-http://deb.debian.org/debian}"
}

is_mounted() { awk -v d="$1" '$5 == d { found = 1 } END { exit !found }' /proc/self/mountinfo; }

do_mount() {
  [ -f "$FROOT/.deltasync-ready" ] || die "no chroot at $FROOT (run: $0 setup)"
  is_mounted "$FROOT" || mount --bind "$FROOT" "$FROOT"
  is_mounted "$FROOT/proc" || mount -t proc proc "$FROOT/proc"
  is_mounted "$FROOT/dev" || mount --bind /dev "$FROOT/dev"
  is_mounted "$FROOT/dev/pts" || mount --bind /dev/pts "$FROOT/dev/pts"
  if ! is_mounted "$FROOT/sys"; then
    mount --rbind /sys "$FROOT/sys"
    mount --make-rslave "$FROOT/sys"
  fi
  local IFS=: d
  for d in $SHARE; do
    [ -n "$d" ] || continue
    mkdir -p "$d" "$FROOT$d"
    is_mounted "$FROOT$d" || mount --bind "$d" "$FROOT$d"
  done
  # The chroot resolves names with the host's files (loopback only).
  cp /etc/hosts "$FROOT/etc/hosts"
}

do_umount() {
  local m
  for _ in 1 2 3; do
    mapfile -t ms < <(awk -v d="$FROOT" '$5 == d || index($5, d "/") == 1 { print length($5) " " $5 }' \
      /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)
    [ "${#ms[@]}" -eq 0 ] && return 0
    for m in "${ms[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

do_setup() {
  [ "$(id -u)" = 0 ] || die "needs root"
  if [ ! -f "$FROOT/.deltasync-ready" ]; then
    command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
    do_umount
    # /tmp and /var/tmp are bound in on the same device: never remove
    # through a mount that is still there.
    if awk -v d="$FROOT" 'index($5, d "/") == 1 || $5 == d { found = 1 } END { exit !found }' \
      /proc/self/mountinfo; then
      die "cannot unmount everything under $FROOT; not removing it"
    fi
    rm -rf --one-file-system "$FROOT"
    mkdir -p "$FROOT"
    local started=$SECONDS
    echo "forky-root: debootstrap forky into $FROOT from $(mirror) (several minutes, once)" >&2
    debootstrap --variant=minbase --include="$PACKAGES" forky "$FROOT" "$(mirror)" \
      /usr/share/debootstrap/scripts/sid >"$FROOT.debootstrap.log" 2>&1 ||
      {
        tail -n 20 "$FROOT.debootstrap.log" >&2
        die "debootstrap failed (log: $FROOT.debootstrap.log)"
      }
    # Engines must not start as services inside; there is no init here.
    printf '#!/bin/sh\nexit 101\n' >"$FROOT/usr/sbin/policy-rc.d"
    chmod +x "$FROOT/usr/sbin/policy-rc.d"
    touch "$FROOT/.deltasync-ready"
    echo "forky-root: ready in $((SECONDS - started)) s" >&2
  fi
  do_mount
  # A root made before golang-go was in the list gets it now.
  if [ ! -x "$FROOT/usr/bin/go" ]; then
    echo "forky-root: installing golang-go into $FROOT" >&2
    chroot "$FROOT" apt-get -o Acquire::Check-Valid-Until=false update -qq >&2
    chroot "$FROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends golang-go >&2
  fi
}

# forky's go, usable from outside (it finds its GOROOT from its own path).
do_go() {
  [ -f "$FROOT/.deltasync-ready" ] || die "no chroot at $FROOT (run: $0 setup)"
  local go
  go="$(ls -d "$FROOT"/usr/lib/go-*/bin/go 2>/dev/null | sort -V | tail -n1)"
  [ -n "$go" ] || die "no go in $FROOT (run: $0 setup)"
  echo "$go"
}

do_run() {
  do_mount
  local dir="$PWD"
  exec chroot "$FROOT" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$dir" "$@"
}

case "${1:-}" in
  setup) do_setup ;;
  mount) do_mount ;;
  umount) do_umount ;;
  path) echo "$FROOT" ;;
  go) do_go ;;
  run)
    shift
    [ $# -gt 0 ] || die "run: no command"
    do_run "$@"
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
