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
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDELTASYNC_WERROR=ON
cmake --build "$build_dir" --parallel "$(nproc)"

# Engines left over from an interrupted run in this build directory.
cd "$build_dir"
ctest --output-on-failure --timeout 900 -j 2 "$@"
