#!/usr/bin/env bash
# Pair "os-update": an OS package update in the base layer. The base is a
# root filesystem made from extracted Debian 12 packages (busybox-static,
# libc6, libgcc-s1, zlib1g, libzstd1, libexpat1, libssl3, openssl) with a
# dpkg status database (/var/lib/dpkg/status, info/*.list and *.md5sums, as a
# real Debian image has), tarred deterministically and `docker import`ed as
# ${TAG_PREFIX}os-update-base:{old,new}; the app layer (`COPY . /` of a context holding app/, a
# few scripts and a 2 MiB asset, identical in both) sits on top.
# NEW updates two packages (pinned versions, both in today's archive):
#   libc6            2.36-9+deb12u7    -> 2.36-9+deb12u14
#   openssl, libssl3 3.0.20-1~deb12u2  -> 3.0.22-1~deb12u2
# If the archive drops one of these versions, `apt-get download` fails with a
# message naming it; pick the current pair from `apt-cache madison PKG`.
# Usage: os-update.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
need apt-get dpkg-deb
ensure_base

COMMON=(busybox-static=1:1.35.0-4+deb12u1+b1 libgcc-s1=12.2.0-14+deb12u1
  zlib1g=1:1.2.13.dfsg-1 libzstd1=1.5.4+dfsg2-5 libexpat1=2.5.0-1+deb12u2)
OLD_DEBS=(libc6=2.36-9+deb12u7 libssl3=3.0.20-1~deb12u2 openssl=3.0.20-1~deb12u2)
NEW_DEBS=(libc6=2.36-9+deb12u14 libssl3=3.0.22-1~deb12u2 openssl=3.0.22-1~deb12u2)

make_rootfs() { # DIR DEB...
  local root="$1" d pkg
  shift
  mkdir -p "$root/var/lib/dpkg/info" "$root/tmp" "$root/root" "$root/etc"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  : >"$root/var/lib/dpkg/status"
  for d in "$@"; do
    dpkg-deb -x "$d" "$root"
    pkg="$(dpkg-deb -f "$d" Package)"
    [ "$(dpkg-deb -f "$d" Multi-Arch)" = same ] && pkg="$pkg:$(dpkg-deb -f "$d" Architecture)"
    {
      dpkg-deb -f "$d" Package
      echo "Status: install ok installed"
      dpkg-deb -f "$d" | grep -v '^Package:'
      echo
    } >>"$root/var/lib/dpkg/status"
    dpkg-deb -c "$d" | awk '{ print substr($0, index($0, "./") + 1) }' |
      sed -e 's| -> .*||' -e 's|/$||' -e 's|^$|/.|' >"$root/var/lib/dpkg/info/$pkg.list"
    mkdir -p "$W/ctl"
    rm -rf "$W/ctl"/*
    dpkg-deb -e "$d" "$W/ctl"
    [ -f "$W/ctl/md5sums" ] && cp "$W/ctl/md5sums" "$root/var/lib/dpkg/info/$pkg.md5sums"
  done
  sed -i 's/^\(Package: \)\?\([a-z0-9.+-]*\)$/Package: \2/' "$root/var/lib/dpkg/status"
  # A shell: busybox applets as symlinks (as scripts/make-base-image.sh).
  while IFS= read -r applet; do
    case "$applet" in "" | busybox | */*) continue ;; esac
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done < <("$root/bin/busybox" --list)
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

rm -rf "$W/old" "$W/new" "$W/app"
for v in old new; do
  mkdir -p "$W/$v/debs"
  fetch_debs "$W/$v/debs" "${COMMON[@]}"
  if [ $v = old ]; then fetch_debs "$W/$v/debs" "${OLD_DEBS[@]}"; else fetch_debs "$W/$v/debs" "${NEW_DEBS[@]}"; fi
  # Install order: busybox first, then alphabetical (as the lists above).
  debs=("$W/$v/debs"/busybox*.deb)
  for d in "$W/$v/debs"/*.deb; do
    case "$d" in */busybox*) ;; *) debs+=("$d") ;; esac
  done
  make_rootfs "$W/$v/rootfs" "${debs[@]}"
  # The tar's own mtime is 0 for every entry (det_tar), as for the busybox base.
  det_tar "$W/$v/rootfs" "$W/$v/rootfs.tar"
  docker_h image rm -f "${TAG_PREFIX}os-update-base:$v" >>"$LOG" 2>&1 || true
  docker_h import --change 'CMD ["/bin/sh"]' "$W/$v/rootfs.tar" "${TAG_PREFIX}os-update-base:$v" >>"$LOG" 2>&1 ||
    fail "docker import of the $v base failed"
  rm -rf "$W/$v/rootfs" "$W/$v/debs"
done

# The app: identical in OLD and NEW.
mkdir -p "$W/app/app/bin"
printf '#!/bin/sh\nexec openssl version\n' >"$W/app/app/bin/start.sh"
chmod 0755 "$W/app/app/bin/start.sh"
printf 'listen=8443\ncipher=TLS_AES_256_GCM_SHA384\n' >"$W/app/app/app.conf"
random_file "$W/app/app/asset.bin" $((2 * 1024 * 1024)) 4242
set_mtimes "$W/app" "$T_OLD"
build "$W/app" "$OLD_TAG" "FROM ${TAG_PREFIX}os-update-base:old
COPY . /
CMD [\"/app/bin/start.sh\"]"
build "$W/app" "$NEW_TAG" "FROM ${TAG_PREFIX}os-update-base:new
COPY . /
CMD [\"/app/bin/start.sh\"]"
done_ok
