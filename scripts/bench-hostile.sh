#!/usr/bin/env bash
# One room live with an ffmpeg publisher, first quiet for 60 s, then while 500 hostile
# connections run against the RTMP port for 60 s: segment cadence, the worker's CPU and RSS, and
# how long an honest client waits to connect, side by side. Not a test: prints figures.
#
#   bash scripts/bench-hostile.sh [--seconds 60] [--attackers 500]
#
# Uses $ROOMCAST_BIN, or builds `roomcast` (debug; PROFILE=release for a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
if [ -z "${ROOMCAST_BIN:-}" ]; then
  if [ "${PROFILE:-debug}" = release ]; then
    cargo build --release --locked -p roomcast --bins
    export ROOMCAST_BIN="$CARGO_TARGET_DIR/release/roomcast"
  else
    cargo build --locked -p roomcast --bins
    export ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast"
  fi
fi
ulimit -n 8192 2>/dev/null || true
exec python3 tests/hostile/bench.py "$@"
