#!/usr/bin/env bash
# The demo: `roomcast dev` with the room `lobby` ready to publish to (or the rooms of a
# StreamRoom file: `scripts/demo.sh -f rooms.yaml`). Installs what it needs, idempotently,
# builds, and runs in the foreground; Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh demo
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
cargo build --locked -q -p roomcast --bin roomcast
exec "$CARGO_TARGET_DIR/debug/roomcast" dev "$@"
