#!/usr/bin/env bash
# The demo, until `roomcast dev` lands: builds the operator and prints every Kubernetes object
# it would create for the example room (the design's `lobby`), as a platform team would
# review it before `kubectl apply`. Installs what it needs, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
cargo build --locked -q -p roomcast-operator --bin roomcast-operator

ROOM="${1:-charts/roomcast/examples/room.yaml}"
echo "# roomcast-operator render -f $ROOM --playback-host live.example.com --ingress-class nginx" >&2
exec "$CARGO_TARGET_DIR/debug/roomcast-operator" render -f "$ROOM" \
  --playback-host live.example.com --ingress-class nginx --redis-url redis://redis:6379
