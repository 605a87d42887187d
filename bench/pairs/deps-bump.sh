#!/usr/bin/env bash
# Pair "deps-bump": a node app whose node_modules (real npm packages, a few
# thousand files, tens of MiB) gets a dependency bump. The versions are pinned
# by the lockfiles in deps-bump/{old,new}/ (made once with `npm install
# --package-lock-only`); `npm ci --ignore-scripts` installs exactly them.
# NEW bumps express 4.18.2->4.19.2 (body-parser, cookie, raw-body follow),
# lodash 4.17.20->4.17.21, moment 2.29.1->2.29.4, axios 1.6.0->1.6.8,
# rxjs 7.8.0->7.8.1,
# typescript 5.4.2->5.4.5, uuid 9.0.0->9.0.1, webpack 5.89.0->5.91.0;
# react, react-dom and all other packages stay.
# Image: `COPY node_modules /app/node_modules` then `COPY app /app` (source and
# package files), the usual layer order of node Dockerfiles. CMD comes first:
# with the vfs storage driver every classic-builder step copies the whole
# root filesystem, so no step follows the big COPY.
# Usage: deps-bump.sh ENGINE_ADDRESS TAG_PREFIX WORKDIR  (prints OLD_TAG NEW_TAG)
source "$(dirname "$0")/_common.sh"
need npm
ensure_base

for v in old new; do
  rm -rf "${W:?}/$v"
  mkdir -p "$W/$v/deps" "$W/$v/app/src"
  cp "$PAIRS_DIR/deps-bump/$v/package.json" "$PAIRS_DIR/deps-bump/$v/package-lock.json" "$W/$v/deps/"
  quiet npm ci --prefix "$W/$v/deps" --ignore-scripts --no-audit --no-fund --loglevel=error ||
    fail "npm ci ($v) failed (is the npm registry reachable?)"
  cp "$W/$v/deps/package.json" "$W/$v/deps/package-lock.json" "$W/$v/app/"
  for i in $(seq 1 30); do
    printf "const _ = require('lodash');\nmodule.exports.f%s = (x) => _.sum([x, %s]);\n" "$i" "$i" >"$W/$v/app/src/m$i.js"
  done
  printf "const express = require('express');\nexpress().listen(8080);\n" >"$W/$v/app/src/server.js"
  mv "$W/$v/deps/node_modules" "$W/$v/node_modules"
  rm -rf "$W/$v/deps"
done
set_mtimes "$W/old" "$T_OLD"
set_mtimes "$W/new" "$T_NEW"
# Unchanged files keep their OLD mtime (npm ci rewrites them all, a real
# build's cache would too; we keep the content change as the only signal).
python3 - "$W/old" "$W/new" "$T_OLD" <<'PY'
import os, sys, filecmp
old, new, t = sys.argv[1], sys.argv[2], int(sys.argv[3])
for d, dirs, files in os.walk(new):
    for f in files:
        p = os.path.join(d, f)
        q = os.path.join(old, os.path.relpath(p, new))
        if not os.path.islink(p) and os.path.isfile(q) and not os.path.islink(q) \
                and filecmp.cmp(p, q, shallow=False):
            os.utime(p, (t, t))
PY

DF="FROM $BASE_IMAGE
CMD [\"node\", \"/app/src/server.js\"]
COPY node_modules /app/node_modules
COPY app /app"
build "$W/old" "$OLD_TAG" "$DF"
build "$W/new" "$NEW_TAG" "$DF"
done_ok
