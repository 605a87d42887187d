#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root), builds with warnings as
# errors, and runs every test: unit suites and the end-to-end suites against
# two private dockerd engines that CTest starts and stops itself.
#   scripts/run-tests.sh [extra ctest args...]
# BUILD_DIR (default: build-ci) selects the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

build_dir="${BUILD_DIR:-build-ci}"
matrix_on=0
if [ "${DELTASYNC_SKIP_MATRIX:-0}" != 1 ] && [ $# -eq 0 ]; then matrix_on=1; fi
# The deltasync-gzip helpers: Debian 12's Go (1.19) and, with the matrix,
# forky's (1.27), whose deflate is what forky's BuildKit writes, so the
# containerd-store sites of the matrix end with the build host's own Id.
go_toolchains="$(command -v go)"
if [ "$matrix_on" = 1 ]; then
  bash scripts/forky-root.sh setup
  go_toolchains="$go_toolchains;$(bash scripts/forky-root.sh go)"
fi
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDELTASYNC_WERROR=ON \
  "-DDELTASYNC_GO_TOOLCHAINS=$go_toolchains"
cmake --build "$build_dir" --parallel "$(nproc)"

src="$(pwd)"
# 3 (below) needs a Release build; it is made now, at the lowest priority,
# while the tests of 1 and 2 spend much of their time waiting on the engines,
# and waited for before its package is checked.
release_pid=""
if [ "$matrix_on" = 1 ]; then
  case "$build_dir" in /*) release_dir="${build_dir}-release" ;; *) release_dir="$src/${build_dir}-release" ;; esac
  release_log="$release_dir.log"
  (
    cmake -S "$src" -B "$release_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDELTASYNC_WERROR=ON \
      -DDELTASYNC_TESTS=OFF -DDELTASYNC_BENCH=OFF "-DDELTASYNC_GO_TOOLCHAINS=$go_toolchains" &&
      nice -n 19 cmake --build "$release_dir" --parallel "$(nproc)"
  ) >"$release_log" 2>&1 &
  release_pid=$!
  trap '[ -z "$release_pid" ] || kill "$release_pid" 2>/dev/null || true' EXIT
fi
cd "$build_dir"
# 1. Everything against Debian 12's dockerd 20.10 (classic store).
ctest --output-on-failure --timeout 900 -j 2 "$@"

# 2. The engine matrix (docs/engines.md): what sites run now, from Debian
# forky in a chroot made once by scripts/forky-root.sh: dockerd 28.5 with the
# classic store and with the containerd image store (images built there by
# BuildKit), and Podman 5. On each: send with a local and a remote basis,
# bundle + apply, resume after the site is killed mid-transfer, three sites.
# Then containerd alone as the site (1.6 and 2.x; issue 16).
# DELTASYNC_SKIP_MATRIX=1 leaves it out (a quick local run).
if [ "$matrix_on" = 1 ]; then
  matrix='bundle_apply_test.*(Bit|Signatures)|daemon_transfer_test.*(LocalAndRemote|Resumes)|multi_site_test.*Three|engine_.*_(start|stop)'
  for kind in docker28-classic docker28-containerd; do
    echo "== engine matrix: $kind"
    expect_same_id=0
    [ "$kind" = docker28-containerd ] && expect_same_id=1
    DELTASYNC_TEST_ENGINE_KIND=$kind DELTASYNC_TEST_BUILDKIT=1 \
      DELTASYNC_TEST_EXPECT_SAME_ID=$expect_same_id \
      DELTASYNC_DOCKER_CLI="$src/scripts/forky-docker.sh" \
      ctest --output-on-failure --timeout 900 -j 2 -R "$matrix"
  done
  # containerd alone as the site (k3s, kubeadm): Debian 12's 1.6 beside
  # Debian 12's dockerd as the build host; forky's 2.x beside forky's
  # BuildKit build host, where the site must end with the build host's Id.
  echo "== engine matrix: containerd16 site"
  DELTASYNC_TEST_SITE_ENGINE_KIND=containerd16 DELTASYNC_CTR_CLI=ctr \
    ctest --output-on-failure --timeout 900 -j 2 -R "$matrix"
  echo "== engine matrix: containerd2 site, docker28-containerd build host"
  DELTASYNC_TEST_ENGINE_KIND=docker28-containerd DELTASYNC_TEST_BUILDKIT=1 \
    DELTASYNC_TEST_EXPECT_SAME_ID=1 DELTASYNC_DOCKER_CLI="$src/scripts/forky-docker.sh" \
    DELTASYNC_TEST_SITE_ENGINE_KIND=containerd2 DELTASYNC_CTR_CLI="$src/scripts/forky-ctr.sh" \
    ctest --output-on-failure --timeout 900 -j 2 -R "$matrix"
  echo "== engine matrix: podman5"
  PATH="$src/scripts/forky-bin:$PATH" ctest --output-on-failure --timeout 900 -R '^podman_test$'
fi

# 3. The Release build packagers make (-O3, where g++ warns differently),
# warnings as errors, and its .deb checked as the package test checks the
# default build's (contents, Depends, install, remove, purge). Runs with the
# matrix (the full run CI makes); DELTASYNC_SKIP_MATRIX=1 leaves it out too.
if [ "$matrix_on" = 1 ]; then
  echo "== Release build (made in the background since step 1) and its package"
  if ! wait "$release_pid"; then
    release_pid=""
    tail -n 60 "$release_log"
    echo "run-tests: the Release build failed (whole log: $release_log)" >&2
    exit 1
  fi
  release_pid=""
  tail -n 3 "$release_log"
  # Anything the background build left undone (nothing, normally).
  cmake --build "$release_dir" --parallel "$(nproc)"
  version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$release_dir/CMakeCache.txt")"
  bash "$src/tests/deploy/package_test.sh" "$src" "$release_dir" "$version"
fi
