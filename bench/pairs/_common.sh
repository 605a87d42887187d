# shellcheck shell=bash disable=SC2034
# Shared helpers for the image-pair generators in bench/pairs/*.sh.
# Sourced, not run. Every generator is called as
#
#   bench/pairs/NAME.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR
#
# builds ${TAG_PREFIX}NAME:old and ${TAG_PREFIX}NAME:new in the engine at
# ENGINE_ADDRESS (classic builder, --network none, FROM the registry-free
# busybox base image of scripts/make-base-image.sh, which it creates if
# missing) and prints exactly "OLD_TAG NEW_TAG" on stdout. Everything else
# goes to WORKDIR/NAME/log, whose tail is printed to stderr on failure.
#
# Determinism: fixed seeds for generated data, pinned Debian package versions,
# npm lockfiles kept next to the generator, umask 022, and every file and
# directory of a build context set to a fixed mtime before the build (so the
# same inputs give the same layer diff_ids, apart from directories the
# builder itself creates).
# Env: DELTASYNC_DOCKER_CLI (docker CLI, default `docker`),
#      BENCH_BASE_IMAGE (default deltasync-base:busybox).
set -euo pipefail
umask 022

PAIRS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$PAIRS_DIR/../.." && pwd)"
PAIR_NAME="$(basename "$0" .sh)"
BASE_IMAGE="${BENCH_BASE_IMAGE:-deltasync-base:busybox}"
DOCKER="${DELTASYNC_DOCKER_CLI:-docker}"

# Fixed timestamps: OLD contexts get T_OLD, NEW contexts T_NEW.
T_OLD=1700000000 # 2023-11-14
T_NEW=1700604800 # one week later

if [ $# -ne 3 ]; then
  echo "usage: $0 ENGINE_ADDRESS TAG_PREFIX WORKDIR" >&2
  exit 2
fi
ENGINE="$1"
TAG_PREFIX="$2"
WORK_ROOT="$3"
OLD_TAG="${TAG_PREFIX}${PAIR_NAME}:old"
NEW_TAG="${TAG_PREFIX}${PAIR_NAME}:new"
W="$WORK_ROOT/$PAIR_NAME"
mkdir -p "$W"
W="$(cd "$W" && pwd)"
LOG="$W/log"
: >"$LOG"

fail() {
  trap - EXIT
  echo "$PAIR_NAME: $*" >&2
  if [ -s "$LOG" ]; then
    echo "$PAIR_NAME: last lines of $LOG:" >&2
    tail -n 15 "$LOG" >&2
  fi
  exit 1
}
# shellcheck disable=SC2154
trap 'rc=$?; [ $rc -eq 0 ] || fail "failed (exit $rc)"' EXIT

# Runs a command with its output sent to the log.
quiet() { "$@" >>"$LOG" 2>&1; }

docker_h() { DOCKER_CLI_HINTS=false "$DOCKER" -H "$ENGINE" "$@"; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || {
      trap - EXIT
      echo "$PAIR_NAME: '$c' not found (run scripts/install-deps.sh)" >&2
      exit 1
    }
  done
}
need "$DOCKER" python3 tar

ensure_base() {
  quiet bash "$REPO_ROOT/scripts/make-base-image.sh" "$ENGINE" "$BASE_IMAGE" ||
    fail "cannot create the base image $BASE_IMAGE"
}

# set_mtimes DIR EPOCH: every entry under DIR (and DIR) gets mtime EPOCH.
set_mtimes() {
  find "$1" -depth -exec touch -h -d "@$2" {} +
}

# build CONTEXT TAG DOCKERFILE_TEXT: no network, the
# Dockerfile kept outside the context (so `COPY . /app` copies only the app).
build() {
  local ctx="$1" tag="$2" text="$3" df
  df="$W/Dockerfile.$(echo "$tag" | tr -c 'A-Za-z0-9\n' '_')"
  printf '%s\n' "$text" >"$df"
  # BENCH_BUILDKIT=1: BuildKit (the forky engines), else the classic builder.
  DOCKER_BUILDKIT="${BENCH_BUILDKIT:-0}" docker_h build -q --no-cache --network none -f "$df" -t "$tag" "$ctx" >>"$LOG" 2>&1 ||
    fail "docker build of $tag failed"
}

# random_file PATH BYTES SEED: deterministic pseudo-random bytes.
random_file() {
  python3 - "$1" "$2" "$3" <<'PY'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    left = size
    while left:
        n = min(left, 1 << 22)
        f.write(r.randbytes(n))
        left -= n
PY
}

# fetch_debs DEST PKG=VERSION...: downloads pinned .debs (cached in
# WORK_ROOT/.debs) and copies them to DEST.
fetch_debs() {
  local dest="$1" spec cache="$WORK_ROOT/.debs" name ver file
  shift
  mkdir -p "$cache" "$dest"
  for spec in "$@"; do
    name="${spec%%=*}"
    ver="${spec#*=}"
    # apt names files NAME_VERSION_ARCH.deb with ':' in the version as %3a.
    file="$(ls "$cache/${name}_${ver//:/%3a}_"*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$file" ]; then
      (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$spec") >>"$LOG" 2>&1 ||
        fail "apt-get download $spec failed (is this version still in the Debian 12 archive? see apt-cache madison $name)"
      file="$(ls "$cache/${name}_${ver//:/%3a}_"*.deb | head -n1)"
    fi
    cp "$file" "$dest/"
  done
}

# extract_debs DIR DEB...: unpacks the data part of each .deb into DIR.
extract_debs() {
  local dir="$1" d
  shift
  mkdir -p "$dir"
  for d in "$@"; do
    dpkg-deb -x "$d" "$dir" || fail "dpkg-deb -x $d failed"
  done
}

# det_tar DIR OUT: deterministic tar of DIR's contents (as make-base-image.sh).
det_tar() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$1" -cf "$2" .
}

# Prints the result; called last by every generator.
done_ok() {
  docker_h image inspect "$OLD_TAG" >/dev/null 2>&1 || fail "$OLD_TAG missing after build"
  docker_h image inspect "$NEW_TAG" >/dev/null 2>&1 || fail "$NEW_TAG missing after build"
  trap - EXIT
  echo "$OLD_TAG $NEW_TAG"
}
