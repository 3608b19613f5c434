#!/usr/bin/env bash
# Latency benchmark: a standard and a low-latency room in one `roomcast dev`, each watched by
# Chromium + hls.js for WATCH_SECONDS (60 by default) while ffmpeg publishes to it. Prints, per
# room: latency against EXT-X-PROGRAM-DATE-TIME (median, p95), stalls, origin requests and
# playlist bytes per viewer per second and the media CPU of the room; the low-latency room a
# second time with `_HLS_skip` stripped (`low-full`), for the bytes without delta updates. Not a
# test: prints figures.
#
#   bash scripts/bench-latency.sh                     # debug build of the CLI
#   ROOMCAST_BIN=target/release/roomcast bash scripts/bench-latency.sh
#
# Needs Chromium, ffmpeg and tests/browser's playwright-core (`npm ci` there).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
if [ -z "${ROOMCAST_BIN:-}" ]; then
  cargo build --locked -p roomcast
  ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast"
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
export ROOMCAST_BIN
exec node scripts/bench_latency.mjs
