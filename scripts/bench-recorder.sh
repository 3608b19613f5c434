#!/usr/bin/env bash
# Recorder benchmark: upload lag p50/p99 from segment close to object in S3 over a real-time
# session on loopback (in-process s3s server), then spool catch-up after an S3 outage.
#   SESSION_SECS=120 OUTAGE_SECS=60 SEGMENT_SECS=2 scripts/bench-recorder.sh
# Debug build (what the tests use); a release build only makes the recorder faster.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
export BENCH_SESSION_SECS="${SESSION_SECS:-120}"
export BENCH_OUTAGE_SECS="${OUTAGE_SECS:-60}"
export BENCH_SEGMENT_SECS="${SEGMENT_SECS:-2}"
exec cargo test -q -p roomcast-recorder --lib bench_upload_lag_and_spool_catch_up -- --ignored --nocapture
