#!/usr/bin/env bash
# Installs every build, test and benchmark dependency from Debian 12 packages.
# Idempotent; needs root (or sudo). Used by the README commands and by CI.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  librsync-dev libboost-dev libboost-system-dev libssl-dev libzstd-dev zstd
  libspdlog-dev libfmt-dev libprotobuf-dev protobuf-compiler
  libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev libsystemd-dev
  zlib1g-dev busybox-static
  docker.io tar gzip rsync xz-utils python3 procps iproute2 openssl time
  libarchive-tools  # bsdtar: tests/unit/tar_split_test.cpp reads archives from every writer
  rdiff  # bench/baselines/rsync-floor.py: the one-round rsync floor
  debootstrap  # scripts/forky-root.sh: the engine matrix's newer engines
  golang-go  # the deltasync-gzip helper (cmake/GoGzipHelpers.cmake): Go's own gzip, rebuilt byte for byte
  podman  # tests/e2e/podman_test.sh: the engines behind Podman's Docker-compatible API
  uidmap  # tests/e2e/podman_rootless_test.sh: rootless Podman (newuidmap)
  libgrpc++-dev protobuf-compiler-grpc  # containerd's gRPC API (common/engine/containerd/)
  golang-github-containerd-containerd-dev  # containerd's API .proto files (proto/containerd/)
  containerd  # tests: a containerd site (k3s, kubeadm) beside a Docker build host
  docker-registry  # tests/support/test_registry.cpp: a real registry (distribution 2.8) for the registry client
  clang clang-format
  systemd dpkg-dev init-system-helpers
)
# npm (bench/pairs/deps-bump.sh): Debian's package, unless an npm is already
# there (NodeSource's nodejs ships its own and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || packages+=(npm)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
