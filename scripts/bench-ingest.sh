#!/usr/bin/env bash
# Benchmark of the ingest gateway (issue #15): one publisher straight to a room's media worker,
# then through roomcast-ingest over RTMP and over RTMPS, side by side in one run. Prints the
# relay's CPU per publisher (% of one core) next to the media worker's passthrough cost, and
# the time the gateway adds to the first playable segment. Not a test: prints figures.
#
#   bash scripts/bench-ingest.sh                  # debug build (what the test runs build)
#   PROFILE=release bash scripts/bench-ingest.sh  # release build (the figures to quote)
#   PUBLISH_SECONDS=20 SEGMENT=2 ROUNDS=2 FIRST_ROUNDS=10 BENCH_SIZE=854x480 are the defaults
#
# Needs ffmpeg, openssl and socat (scripts/install-deps.sh). Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh demo >/dev/null
command -v socat >/dev/null || bash scripts/install-deps.sh
PROFILE="${PROFILE:-debug}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
case "$PROFILE" in
  release) cargo build --release --locked -p roomcast-media -p roomcast-ingest ;;
  debug) cargo build --locked -p roomcast-media -p roomcast-ingest ;;
  *) echo "PROFILE must be debug or release, got $PROFILE" >&2; exit 2 ;;
esac
exec python3 scripts/bench_ingest.py "$CARGO_TARGET_DIR/$PROFILE/roomcast-media" \
  "$CARGO_TARGET_DIR/$PROFILE/roomcast-ingest" "$PROFILE"
