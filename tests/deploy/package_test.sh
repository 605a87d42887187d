#!/usr/bin/env bash
# The Debian package (cmake/Packaging.cmake): build it with cpack, check its
# contents and control data, verify the unit with systemd-analyze, install it
# for real (dpkg) into a throwaway root and run both binaries from there, then
# remove and purge it.
#
#   package_test.sh SOURCE_DIR BUILD_DIR VERSION
#
# The throwaway root's dpkg database is a copy of this machine's package
# list (no triggers, no files), so dpkg checks the package's Depends against
# what is really installed here, as on a site, without --force-depends and
# without touching the machine's own database. Maintainer scripts run with
# --force-script-chrootless, i.e. with DPKG_ROOT set: they must then change
# nothing outside the root.
set -euo pipefail

src=${1:?usage: package_test.sh SOURCE_DIR BUILD_DIR VERSION}
build=${2:?usage: package_test.sh SOURCE_DIR BUILD_DIR VERSION}
version=${3:?usage: package_test.sh SOURCE_DIR BUILD_DIR VERSION}

fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in cpack dpkg dpkg-deb dpkg-query dpkg-shlibdeps systemd-analyze readelf ldd; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps.sh installs it)"
done

work=$(mktemp -d /tmp/deltasync-package-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- build the package (the binaries first: cpack only installs what is built)
cmake --build "$build" --target deltasend deltarecvd >"$work/build.log" 2>&1 ||
  { tail -n 50 "$work/build.log"; fail "building deltasend/deltarecvd"; }
(cd "$build" && cpack -G DEB -B "$work/out" --config "$build/CPackConfig.cmake") >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack"; }
shopt -s nullglob
debs=("$work"/out/*.deb)
[ "${#debs[@]}" -eq 1 ] || fail "expected one .deb, got: ${debs[*]:-none}"
deb=${debs[0]}
echo "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"

# ---- control data
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = deltasync ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), want $version"
[ "$(field Section)" = admin ] || fail "Section: $(field Section)"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture: $(field Architecture)"
[ "$(field Recommends)" = "docker.io | podman" ] || fail "Recommends: $(field Recommends)"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Description)" ] || fail "no Description"
depends=$(field Depends)
echo "Depends: $depends"
# Names in Depends (versions and alternatives stripped).
depend_names=" $(echo "$depends" | tr ',|' '\n\n' | sed 's/(.*)//; s/[[:space:]]//g' | sort -u | tr '\n' ' ') "

# Every shared library the binaries link directly (DT_NEEDED; what those
# need in turn is their packages' business) must come from a package named in
# Depends, directly or through its Provides (libspdlog1.10 provides
# libspdlog1.10-fmt9).
dpkg-deb -x "$deb" "$work/x"
owner_of() { # the package holding a library file, under any of its names
  local lib=$1 real candidate
  real=$(readlink -f "$lib")
  # merged /usr: dpkg may know /lib/... or /usr/lib/..., by link or real name
  for candidate in "$lib" "$real" "${lib#/usr}" "${real#/usr}" "/usr$lib" "/usr$real"; do
    dpkg -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1 && return 0
  done
  return 1
}
for bin in deltasend deltarecvd; do
  ldd "$work/x/usr/bin/$bin" >"$work/ldd.txt"
  needed=$(readelf -d "$work/x/usr/bin/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  [ -n "$needed" ] || fail "$bin: no NEEDED entries"
  for soname in $needed; do
    lib=$(awk -v n="$soname" '$1 == n && $2 == "=>" {print $3}' "$work/ldd.txt")
    [ -n "$lib" ] || fail "$bin: $soname not found by ldd"
    owner=$(owner_of "$lib") || fail "$bin: $lib belongs to no package"
    names="$owner $(dpkg-query -W -f='${Provides}' "$owner" | tr ',' '\n' | sed 's/(.*)//; s/[[:space:]]//g' | tr '\n' ' ')"
    found=
    for n in $names; do
      case "$depend_names" in *" $n "*) found=$n ;; esac
    done
    [ -n "$found" ] || fail "$bin needs $lib from $owner, which Depends does not name"
    echo "  $bin: $soname <- $owner"
  done
done
echo "Depends covers every shared library of both binaries"

# ---- contents
dpkg-deb -c "$deb" >"$work/contents.txt"
has() { # MODE PATH
  grep -qE "^$1 root/root +[0-9]+ [0-9-]+ [0-9:]+ \.$2\$" "$work/contents.txt" ||
    { cat "$work/contents.txt"; fail "package lacks $2 (mode $1, root/root)"; }
}
has -rwxr-xr-x /usr/bin/deltasend
has -rwxr-xr-x /usr/bin/deltarecvd
has -rw-r--r-- /lib/systemd/system/deltarecvd.service
has -rw-r--r-- /etc/deltasync/deltarecvd.conf
has -rw-r--r-- /etc/deltasync/deltasend.conf
has -rw-r--r-- /usr/share/doc/deltasync/deploy.md
has -rw-r--r-- /usr/share/bash-completion/completions/deltasend
has -rw-r--r-- /usr/share/bash-completion/completions/deltarecvd
# Man pages: made when the build found pandoc (cmake/Manpages.cmake).
if grep -q '^PANDOC_EXECUTABLE:FILEPATH=/' "$build/CMakeCache.txt" 2>/dev/null; then
  has -rw-r--r-- /usr/share/man/man1/deltasend.1.gz
  has -rw-r--r-- /usr/share/man/man8/deltarecvd.8.gz
fi
if [ -f "$src/deploy/make-certs.sh" ]; then
  has -rwxr-xr-x /usr/share/deltasync/make-certs.sh
fi
# The deltasync-gzip helpers the build made (cmake/GoGzipHelpers.cmake).
helpers=()
for h in "$build"/libexec/deltasync/deltasync-gzip-*; do
  [ -e "$h" ] || continue
  helpers+=("$(basename "$h")")
  has -rwxr-xr-x "/usr/libexec/deltasync/$(basename "$h")"
done
if grep -qE ' \./usr/local/| \./home/| \./root/' "$work/contents.txt"; then
  fail "files outside the Debian layout: $(grep -E ' \./usr/local/| \./home/| \./root/' "$work/contents.txt")"
fi

# ---- control files: conffiles and maintainer scripts
dpkg-deb -e "$deb" "$work/control"
conffiles=$(sort "$work/control/conffiles")
[ "$conffiles" = "$(printf '/etc/deltasync/deltarecvd.conf\n/etc/deltasync/deltasend.conf')" ] ||
  fail "conffiles: $conffiles"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "no executable $script"
  sh -n "$work/control/$script" || fail "$script: syntax"
done
echo "conffiles and maintainer scripts present"

# ---- the unit, with systemd-analyze (against the extracted binary: verify
# checks that ExecStart's program exists and is executable)
for bin in deltasend deltarecvd; do
  if readelf -S "$work/x/usr/bin/$bin" | grep -q '\.debug_info'; then
    fail "$bin is not stripped"
  fi
done
mkdir "$work/unit"
sed "s|^ExecStart=/usr/bin/deltarecvd |ExecStart=$work/x/usr/bin/deltarecvd |" \
  "$work/x/lib/systemd/system/deltarecvd.service" >"$work/unit/deltarecvd.service"
grep -q "^ExecStart=$work/x/usr/bin/deltarecvd --config /etc/deltasync/deltarecvd.conf\$" \
  "$work/unit/deltarecvd.service" || fail "unexpected ExecStart in the unit"
verify_rc=0
systemd-analyze verify "$work/unit/deltarecvd.service" >"$work/verify.txt" 2>&1 || verify_rc=$?
cat "$work/verify.txt"
[ "$verify_rc" -eq 0 ] || fail "systemd-analyze verify: exit $verify_rc"
# Unknown keys, bad values etc. are warnings with exit 0: any line about our unit fails.
if grep -q 'deltarecvd.service' "$work/verify.txt"; then fail "systemd-analyze verify warned"; fi
echo "systemd-analyze verify: ok"

# ---- install for real into a throwaway root
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
touch "$root/var/lib/dpkg/available"
# Empty file lists for the copied packages (dpkg reads them for conflicts).
dpkg-query -W -f='${binary:Package}\n' | while read -r p; do : >"$root/var/lib/dpkg/info/$p.list"; done
# --force-script-chrootless: the maintainer scripts run on this machine with
# DPKG_ROOT=$root and must change only files below it (deb-systemd-helper
# honours DPKG_ROOT; systemctl is not called).
pkg() { dpkg --root="$root" --force-script-chrootless --log=/dev/null "$@"; }
host_link=/etc/systemd/system/multi-user.target.wants/deltarecvd.service
host_state=/var/lib/systemd/deb-systemd-helper-enabled/deltarecvd.service.dsh-also
host_had_link=no
if [ -e "$host_link" ] || [ -L "$host_link" ] || [ -e "$host_state" ]; then host_had_link=yes; fi
pkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i (Depends not satisfiable here?)"; }
if [ "$host_had_link" = no ] && { [ -L "$host_link" ] || [ -e "$host_state" ]; }; then
  fail "postinst enabled deltarecvd.service on this machine instead of in DPKG_ROOT"
fi
status=$(dpkg-query --root="$root" -W -f='${Status}' deltasync)
[ "$status" = "install ok installed" ] || fail "after install: $status"
dpkg-query --root="$root" -W -f='${Conffiles}\n' deltasync >"$work/conffiles.txt"
grep -q '/etc/deltasync/deltarecvd.conf ' "$work/conffiles.txt" || fail "dpkg did not record the conffiles"
# postinst enabled the unit (deb-systemd-helper under DPKG_ROOT), did not start it.
wants="$root/etc/systemd/system/multi-user.target.wants/deltarecvd.service"
[ -L "$wants" ] || fail "postinst did not enable deltarecvd.service (no $wants)"
[ "$(readlink "$wants")" = /lib/systemd/system/deltarecvd.service ] || fail "enable link -> $(readlink "$wants")"
echo "installed into $root: $status, enabled"

# The installed binaries run with this machine's libraries.
for bin in deltasend deltarecvd; do
  if ldd "$root/usr/bin/$bin" | grep -q 'not found'; then
    ldd "$root/usr/bin/$bin"
    fail "$bin: missing libraries"
  fi
  "$root/usr/bin/$bin" --help >"$work/$bin.help" 2>&1 || { cat "$work/$bin.help"; fail "$bin --help failed"; }
  grep -q "^$bin: " "$work/$bin.help" || { cat "$work/$bin.help"; fail "$bin --help: unexpected output"; }
  echo "$bin --help: ok ($(head -n1 "$work/$bin.help"))"
done

# The helpers run where the binaries look for them (<bin>/../libexec/deltasync).
for h in "${helpers[@]}"; do
  v="$("$root/usr/libexec/deltasync/$h" -version)" || fail "$h -version failed"
  [ "deltasync-gzip-$v" = "$h" ] || fail "$h says it is $v"
  echo "$h: ok"
done

# Reinstall keeps a locally edited conffile (it is a conffile, not a plain file).
echo "# local edit" >>"$root/etc/deltasync/deltarecvd.conf"
pkg -i "$deb" >"$work/reinstall.log" 2>&1 || { cat "$work/reinstall.log"; fail "reinstall"; }
grep -q '^# local edit$' "$root/etc/deltasync/deltarecvd.conf" || fail "reinstall overwrote the edited conffile"

# Remove: binaries go, configuration stays; purge: everything, and the enable link.
pkg -r deltasync >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r"; }
[ ! -e "$root/usr/bin/deltarecvd" ] || fail "dpkg -r left /usr/bin/deltarecvd"
[ -f "$root/etc/deltasync/deltarecvd.conf" ] || fail "dpkg -r removed the configuration"
[ "$(dpkg-query --root="$root" -W -f='${Status}' deltasync)" = "deinstall ok config-files" ] ||
  fail "after remove: $(dpkg-query --root="$root" -W -f='${Status}' deltasync)"
pkg -P deltasync >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg -P"; }
[ ! -e "$root/etc/deltasync/deltarecvd.conf" ] || fail "purge left the configuration"
[ ! -L "$wants" ] || fail "purge left the enable link"
echo "remove and purge: ok"
echo "PASS: package $(basename "$deb")"
