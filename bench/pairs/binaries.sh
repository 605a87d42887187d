#!/usr/bin/env bash
# Pair "binaries": compiled binaries and shared libraries at two nearby
# versions, from Debian 12 packages (pinned versions, both in the archive's
# bookworm, bookworm-updates or bookworm-security suites today):
#   curl, libcurl4   7.88.1-10+deb12u5  -> 7.88.1-10+deb12u15
#   openssl, libssl3 3.0.20-1~deb12u2   -> 3.0.22-1~deb12u2
#   systemd          252.38-1~deb12u1   -> 252.39-1~deb12u2
#   jq, libjq1       1.6-2.1+deb12u2    -> 1.6-2.1+deb12u3
# Executables go to /usr/local/bin, shared objects (and their symlinks) to
# /usr/local/lib, flattened: `COPY . /usr/local/`.
# If the archive drops one of these versions, `apt-get download` fails with a
# message naming it; pick the current pair from `apt-cache madison PKG`.
# Usage: binaries.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
need apt-get dpkg-deb
ensure_base

OLD_DEBS=(curl=7.88.1-10+deb12u5 libcurl4=7.88.1-10+deb12u5
  openssl=3.0.20-1~deb12u2 libssl3=3.0.20-1~deb12u2
  systemd=252.38-1~deb12u1 jq=1.6-2.1+deb12u2 libjq1=1.6-2.1+deb12u2)
NEW_DEBS=(curl=7.88.1-10+deb12u15 libcurl4=7.88.1-10+deb12u15
  openssl=3.0.22-1~deb12u2 libssl3=3.0.22-1~deb12u2
  systemd=252.39-1~deb12u2 jq=1.6-2.1+deb12u3 libjq1=1.6-2.1+deb12u3)

for v in old new; do
  rm -rf "${W:?}/$v"
  mkdir -p "$W/$v/debs" "$W/$v/ctx/bin" "$W/$v/ctx/lib"
  if [ $v = old ]; then fetch_debs "$W/$v/debs" "${OLD_DEBS[@]}"; else fetch_debs "$W/$v/debs" "${NEW_DEBS[@]}"; fi
  extract_debs "$W/$v/x" "$W/$v"/debs/*.deb
  # Shared objects (files and symlinks), flattened into lib/.
  find "$W/$v/x" \( -type f -o -type l \) \( -name '*.so' -o -name '*.so.*' \) -print0 |
    xargs -0 -r cp -a -t "$W/$v/ctx/lib/"
  # Executables from bin/sbin and systemd's libexec directory, into bin/.
  find "$W/$v/x" -type f -perm -u+x ! -name '*.so' ! -name '*.so.*' \
    \( -path '*/bin/*' -o -path '*/sbin/*' -o -path '*/lib/systemd/*' \) -print0 |
    xargs -0 -r cp -a -t "$W/$v/ctx/bin/"
  rm -rf "$W/$v/x" "$W/$v/debs"
  [ -x "$W/$v/ctx/bin/curl" ] && [ -x "$W/$v/ctx/bin/systemctl" ] || fail "unexpected package layout ($v)"
done
set_mtimes "$W/old/ctx" "$T_OLD"
set_mtimes "$W/new/ctx" "$T_NEW"

DF="FROM $BASE_IMAGE
COPY . /usr/local/"
build "$W/old/ctx" "$OLD_TAG" "$DF"
build "$W/new/ctx" "$NEW_TAG" "$DF"
done_ok
