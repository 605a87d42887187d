#!/usr/bin/env bash
# Pair "mtime-rebuild": the same build context rebuilt with new mtimes (a CI
# rebuild from a fresh checkout): identical content, every file and directory
# touched. The context is a node app: the OLD node_modules of the deps-bump
# pair (npm ci from the lockfile in deps-bump/old/) plus a small source tree.
# Usage: mtime-rebuild.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
need npm
ensure_base

rm -rf "$W/ctx"
mkdir -p "$W/ctx/src"
cp "$PAIRS_DIR/deps-bump/old/package.json" "$PAIRS_DIR/deps-bump/old/package-lock.json" "$W/ctx/"
quiet npm ci --prefix "$W/ctx" --ignore-scripts --no-audit --no-fund --loglevel=error ||
  fail "npm ci failed (is the npm registry reachable?)"
for i in $(seq 1 40); do
  printf '// module %s\nexport function f%s(x) { return x * %s + 1; }\n' "$i" "$i" "$i" >"$W/ctx/src/m$i.js"
done

DF="FROM $BASE_IMAGE
CMD [\"node\", \"/app/src/m1.js\"]
COPY . /app"
set_mtimes "$W/ctx" "$T_OLD"
build "$W/ctx" "$OLD_TAG" "$DF"
set_mtimes "$W/ctx" "$T_NEW"
build "$W/ctx" "$NEW_TAG" "$DF"
done_ok
