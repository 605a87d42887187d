#!/usr/bin/env bash
# Where deltasend's settings come from: the command line, then DELTASEND_*,
# then the config file (deploy/deltasend.conf says so). Uses `deltasend
# status` against closed loopback ports: the error names the receiver that
# was tried. Also: a usage error exits 2, --help 0.
#   config_precedence_test.sh REPO DELTASEND
set -euo pipefail
repo="$1" deltasend="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() {
  echo "config_precedence_test: $*" >&2
  exit 1
}
"$repo/deploy/make-certs.sh" "$work/pki" --receiver-name localhost --receiver-ip 127.0.0.1 \
  --sender-name ci >/dev/null 2>&1 || fail "make-certs.sh failed"
cat >"$work/deltasend.conf" <<CONF
to = 127.0.0.3:9
cert = $work/pki/sender-ci.pem
key = $work/pki/sender-ci.key
ca = $work/pki/ca.pem
CONF
tried() {  # the receiver named in deltasend's error
  local out
  out="$(env "$@" 2>&1 || true)"
  sed -n 's/.*receiver \(127\.0\.0\.[0-9]*:[0-9]*\).*/\1/p' <<<"$out" | head -n1
}
got="$(tried "$deltasend" status --config "$work/deltasend.conf")"
[ "$got" = 127.0.0.3:9 ] || fail "config file: tried '$got', not 127.0.0.3:9"
got="$(tried DELTASEND_TO=127.0.0.2:9 "$deltasend" status --config "$work/deltasend.conf")"
[ "$got" = 127.0.0.2:9 ] || fail "DELTASEND_TO must win over the config file: tried '$got'"
got="$(tried DELTASEND_TO=127.0.0.2:9 "$deltasend" status --config "$work/deltasend.conf" \
  --to 127.0.0.4:9)"
[ "$got" = 127.0.0.4:9 ] || fail "--to must win over DELTASEND_TO: tried '$got'"
# A certificate path from the environment wins too: a missing file is named.
out="$(DELTASEND_CERT="$work/missing.pem" "$deltasend" status --config "$work/deltasend.conf" 2>&1 || true)"
grep -q "missing.pem" <<<"$out" || fail "DELTASEND_CERT must win over the config file: $out"

rc=0
"$deltasend" --log-level bogus status >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a bad --log-level must exit 2, not $rc"
rc=0
"$deltasend" --help >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "--help must exit 0, not $rc"
echo "config_precedence_test: ok"
