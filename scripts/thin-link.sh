#!/usr/bin/env bash
# A thin link to a "site" on this machine: a network namespace and a shaped
# veth pair, for benchmarks and tests of deltasend over a slow uplink.
#
#   thin-link.sh up       create it (idempotent: re-applies addresses and shaping)
#   thin-link.sh down     remove it (idempotent)
#   thin-link.sh status   print addresses and qdiscs; exit 1 if it is not up
#
#   namespace  ds-site
#   host side  ds-host   10.77.0.1/30   egress (host -> site) tbf 2mbit
#   site side  ds-site0  10.77.0.2/30   egress (site -> host) tbf 512kbit
#   both: burst 32kbit, latency 400ms (netem is not available here, so no
#   added delay or loss: only the rates and a bounded queue)
#
# Run something on the site with `ip netns exec ds-site CMD`, or, for dockerd,
# `nsenter --net=/run/netns/ds-site CMD` (ip netns exec remounts /sys, which
# hides the cgroup mounts dockerd needs). Both share the file system, so unix
# sockets (a dockerd's Engine API) work from both sides; TCP between the two
# goes through the shaped pair.
# Env: THIN_RATE_DOWN (default 2mbit), THIN_RATE_UP (default 512kbit).
# Needs root (CAP_NET_ADMIN), iproute2 (ip, tc) and the sch_tbf qdisc.
set -euo pipefail

NS=ds-site
HOST_IF=ds-host
SITE_IF=ds-site0
HOST_ADDR=10.77.0.1/30
SITE_ADDR=10.77.0.2/30
RATE_DOWN="${THIN_RATE_DOWN:-2mbit}" # host -> site
RATE_UP="${THIN_RATE_UP:-512kbit}"   # site -> host
TBF=(burst 32kbit latency 400ms)

die() {
  echo "thin-link: $*" >&2
  exit 1
}
in_site() { ip netns exec "$NS" "$@"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }

# A TCP connect to a closed port of the site: refused (reachable) or not.
reachable() {
  python3 - "${SITE_ADDR%/*}" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), timeout=3).close()
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)
PY
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
  ns_exists || ip netns add "$NS"
  if ! ip link show "$HOST_IF" >/dev/null 2>&1; then
    # A half-made pair (the site end left in the root namespace) is removed first.
    ip link del "$SITE_IF" >/dev/null 2>&1 || true
    ip link add "$HOST_IF" type veth peer name "$SITE_IF"
  fi
  if ip link show "$SITE_IF" >/dev/null 2>&1; then
    ip link set "$SITE_IF" netns "$NS"
  fi
  in_site ip link show "$SITE_IF" >/dev/null 2>&1 || die "$SITE_IF is not in namespace $NS"
  ip addr replace "$HOST_ADDR" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  in_site ip addr replace "$SITE_ADDR" dev "$SITE_IF"
  in_site ip link set lo up
  in_site ip link set "$SITE_IF" up
  # Segmentation offloads would hand tbf 64 KiB packets; shape real frames.
  if command -v ethtool >/dev/null 2>&1; then
    ethtool -K "$HOST_IF" tso off gso off gro off >/dev/null 2>&1 || true
    in_site ethtool -K "$SITE_IF" tso off gso off gro off >/dev/null 2>&1 || true
  fi
  tc qdisc replace dev "$HOST_IF" root tbf rate "$RATE_DOWN" "${TBF[@]}"
  in_site tc qdisc replace dev "$SITE_IF" root tbf rate "$RATE_UP" "${TBF[@]}"
  reachable || die "${SITE_ADDR%/*} cannot be reached from the host"
  echo "thin-link: up: host ${HOST_ADDR%/*} -> site ${SITE_ADDR%/*} at $RATE_DOWN, back at $RATE_UP (namespace $NS)"
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root (ip netns, tc)"
  ip link del "$HOST_IF" >/dev/null 2>&1 || true # deletes its peer as well
  if ns_exists; then ip netns del "$NS"; fi
  echo "thin-link: down"
}

status() {
  ns_exists || {
    echo "thin-link: namespace $NS does not exist"
    exit 1
  }
  ip -brief addr show "$HOST_IF"
  tc qdisc show dev "$HOST_IF"
  in_site ip -brief addr show "$SITE_IF"
  in_site tc qdisc show dev "$SITE_IF"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
