#!/usr/bin/env bash
# Where deltasend's settings come from: the command line, then DELTASEND_*,
# then the config file (deploy/deltasend.conf says so). Uses `deltasend
# status` against closed loopback ports: the error names the receiver that
# was tried. Also: a usage error exits 2, --help 0.
#   config_precedence_test.sh REPO DELTASEND DELTARECVD
set -euo pipefail
repo="$1" deltasend="$2" deltarecvd="$3"
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

# Options before a subcommand: shared ones pass on, send-only ones are refused
# (but a config file's `to` is not held against a subcommand).
make_archive() {  # make_archive OUT.tar DIR...: a docker-archive, one layer per DIR
  local out="$1" a="$work/archive-$RANDOM" diff_ids="" layers="" n=0
  shift
  mkdir -p "$a"
  for dir in "$@"; do
    n=$((n + 1))
    mkdir -p "$a/l$n"
    tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$dir" -cf "$a/l$n/layer.tar" .
    diff_ids+="${diff_ids:+,}\"sha256:$(sha256sum "$a/l$n/layer.tar" | cut -d' ' -f1)\""
    layers+="${layers:+,}\"l$n/layer.tar\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diff_ids" >"$a/config.json"
  local config_id
  config_id="$(sha256sum "$a/config.json" | cut -d' ' -f1)"
  mv "$a/config.json" "$a/$config_id.json"
  printf '[{"Config":"%s.json","RepoTags":["cli-test:1"],"Layers":[%s]}]' "$config_id" "$layers" \
    >"$a/manifest.json"
  tar -C "$a" -cf "$out" .
}
mkdir -p "$work/tree1" "$work/tree2"
echo one >"$work/tree1/a.txt"
echo two >"$work/tree2/b.txt"
make_archive "$work/old.tar" "$work/tree1"
make_archive "$work/new.tar" "$work/tree1" "$work/tree2"
out="$("$deltasend" --effort max --json bundle --unsigned "docker-archive:$work/new.tar" \
  --base "docker-archive:$work/old.tar" -o "$work/up.dsb" 2>&1)" || fail "bundle failed: $out"
grep -q '"effort": "max"' <<<"$out" || fail "--effort before 'bundle' must apply to it: $out"
out="$("$deltasend" --effort max bundle --unsigned "docker-archive:$work/new.tar" \
  --base "docker-archive:$work/old.tar" -o "$work/up.dsb" --effort fast --json 2>&1)" ||
  fail "bundle failed: $out"
grep -q '"effort": "fast"' <<<"$out" || fail "bundle's own --effort must win: $out"
for before in "--dry-run" "--to 127.0.0.9" "--no-local-basis" "--no-cache" "--cache-budget 1G"; do
  rc=0
  # shellcheck disable=SC2086
  out="$("$deltasend" $before bundle --unsigned "docker-archive:$work/new.tar" -o "$work/up.dsb" 2>&1)" || rc=$?
  [ "$rc" = 2 ] || fail "'$before bundle' must be a usage error (exit 2), not $rc: $out"
  grep -q "does not apply to 'bundle'" <<<"$out" || fail "'$before bundle': unclear error: $out"
done
out="$("$deltasend" --config "$work/deltasend.conf" bundle --unsigned "docker-archive:$work/new.tar" \
  --base "docker-archive:$work/old.tar" -o "$work/up.dsb" 2>&1)" ||
  fail "a config file's 'to' must not stop a bundle: $out"

# cache-budget from the config file, overridden by the command line: a bad
# size in the file is a usage error naming the option; --cache-budget on the
# command line wins (the send then gets as far as the receiver).
cp "$work/deltasend.conf" "$work/budget.conf"
echo "cache-budget = 12Q" >>"$work/budget.conf"
rc=0
out="$("$deltasend" --config "$work/budget.conf" "docker-archive:$work/new.tar" \
  --cache-dir "$work/cache" 2>&1)" || rc=$?
[ "$rc" = 2 ] || fail "a bad cache-budget in the config must exit 2, not $rc: $out"
grep -q -- "--cache-budget" <<<"$out" || fail "the bad cache-budget must be named: $out"
got="$(tried "$deltasend" --config "$work/budget.conf" "docker-archive:$work/new.tar" \
  --cache-dir "$work/cache" --cache-budget 1G)"
[ "$got" = 127.0.0.3:9 ] || fail "--cache-budget must win over the config file: tried '$got'"

# Unknown config keys: the sender warns, the receiver (a service whose
# misspelt `allow-client` would drop a restriction) refuses to start. The
# shipped examples have none.
printf 'to = 127.0.0.3:9\nefort = max\n' >"$work/typo.conf"
out="$("$deltasend" --config "$work/typo.conf" bundle --unsigned "docker-archive:$work/new.tar" \
  --base "docker-archive:$work/old.tar" -o "$work/up.dsb" 2>&1)" || fail "bundle failed: $out"
grep -q "unknown key 'efort'" <<<"$out" || fail "an unknown deltasend config key must be named: $out"
printf 'listen = 127.0.0.1:0\nalow-client = ci\n' >"$work/typo-recv.conf"
rc=0
out="$("$deltarecvd" --config "$work/typo-recv.conf" 2>&1)" || rc=$?
[ "$rc" = 2 ] || fail "deltarecvd with an unknown config key must exit 2, not $rc: $out"
grep -q "unknown key 'alow-client'" <<<"$out" || fail "the unknown key must be named: $out"
out="$("$deltasend" --config "$repo/deploy/deltasend.conf" bundle --unsigned "docker-archive:$work/new.tar" \
  --base "docker-archive:$work/old.tar" -o "$work/up.dsb" 2>&1)" || fail "bundle failed: $out"
! grep -q "unknown key" <<<"$out" || fail "deploy/deltasend.conf has an unknown key: $out"
out="$("$deltarecvd" --config "$repo/deploy/deltarecvd.conf" apply "$work/missing.dsb" 2>&1 || true)"
! grep -q "unknown key" <<<"$out" || fail "deploy/deltarecvd.conf has an unknown key: $out"

rc=0
"$deltasend" --log-level bogus status >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a bad --log-level must exit 2, not $rc"
rc=0
"$deltasend" --help >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "--help must exit 0, not $rc"
echo "config_precedence_test: ok"
