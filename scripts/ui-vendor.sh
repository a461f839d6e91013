#!/usr/bin/env bash
# Installs the web UI's pinned npm packages (ui/package-lock.json) and copies hls.js from
# the npm package into ui/vendor/, which drey embeds at compile time (so building drey
# needs no npm and serving it no network). `--check` fails if the committed copy differs
# from the pinned package instead of copying (scripts/test.sh runs it).
set -euo pipefail
cd "$(dirname "$0")/../ui"
npm ci --no-audit --no-fund --loglevel=error
src=node_modules/hls.js/dist/hls.min.js
if [ "${1:-}" = --check ]; then
  cmp -s "$src" vendor/hls.min.js || { echo "ui/vendor/hls.min.js differs from the pinned hls.js: run scripts/ui-vendor.sh" >&2; exit 1; }
  echo "ui/vendor/hls.min.js matches hls.js $(node -p 'require("./node_modules/hls.js/package.json").version')"
else
  mkdir -p vendor
  cp "$src" vendor/hls.min.js
  cp node_modules/hls.js/LICENSE vendor/hls.js.LICENSE
fi
