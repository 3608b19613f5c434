#!/usr/bin/env bash
# Chat benchmark, one command: roomcast-chat (release build) and a minimal Node socket.io 4.8
# server doing the same broadcast, one after the other in the same run, each with 1,000 connected
# clients from one load generator (tests/chat/bench/load.mjs: the socket.io protocol over a minimal
# websocket client on Node `net` sockets). Server flags pass through the environment, e.g.
# ROOMCAST_RUNTIME=current-thread.
#
#   phase 1: a fixed 20 messages/s (20,000 deliveries/s) for 10 s: server CPU, latency p50/p99
#   phase 2: the rate grows x1.5 every 5 s until deliveries fall short or p99 > 1 s (at most
#            BENCH_MAX_SECONDS from the start, enough for the ramp to pass 1,000,000 deliveries/s;
#            a ramp cut by the limit reports "none (time limit)" as the saturated side)
#   memory per idle connection: server RSS growth from 0 to 1,000 idle clients
#
# Every phase reports the server's user and system CPU (utime/stime of /proc/<pid>/stat), the
# generator's own CPU and how busy the whole machine was, so the last saturation step says which
# side ran out first (the generator, the server, or every core of the machine).
#
# Loopback only; every phase is bounded in messages and seconds. Knobs: BENCH_CLIENTS,
# BENCH_FIXED_RATE, BENCH_FIXED_SECONDS, BENCH_STEP_SECONDS, BENCH_MAX_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${BENCH_CLIENTS:-1000}"
FIXED_RATE="${BENCH_FIXED_RATE:-20}"
FIXED_SECONDS="${BENCH_FIXED_SECONDS:-10}"
STEP_SECONDS="${BENCH_STEP_SECONDS:-5}"
MAX_SECONDS="${BENCH_MAX_SECONDS:-150}"
NAMESPACE=bench
ROOM=room
SIO_PATH="/$NAMESPACE/$ROOM/chat/socket.io"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"

if ! cmp -s tests/chat/package-lock.json tests/chat/node_modules/.roomcast-lock 2>/dev/null; then
  (cd tests/chat && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.roomcast-lock)
fi
cargo build --release --locked -p roomcast-chat
BIN="$CARGO_TARGET_DIR/release/roomcast-chat"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

wait_for() { # file regex -> first capture group
  for _ in $(seq 300); do
    if m="$(grep -oE "$2" "$1" 2>/dev/null | head -1)"; then
      [ -n "$m" ] && { echo "$m"; return 0; }
    fi
    sleep 0.1
  done
  echo "bench: server did not start; log:" >&2
  cat "$1" >&2
  return 1
}

# --- roomcast-chat ---------------------------------------------------------------------------
head -c 32 /dev/urandom | base64 > "$WORK/key"
cat > "$WORK/room.yaml" <<YAML
room: {namespace: $NAMESPACE, name: $ROOM}
ingest: {streamKeyFile: /dev/null, maxBitrateKbps: 8000, reconnectGraceSeconds: 10}
transcode: {}
chat: {signingKeyFile: $WORK/key, historySize: 50, maxMessageLength: 500, rateLimitPerMinute: 6000}
playback: {pathPrefix: /$NAMESPACE/$ROOM, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 60}
YAML
TOKENS=""
for i in 1 2 3 4 5 6 7 8; do
  t="$("$BIN" mint-token --key-file "$WORK/key" --user "sender$i" --name "Sender $i" --ttl 1h)"
  TOKENS="${TOKENS:+$TOKENS,}$t"
done
RUST_LOG=warn,roomcast_chat=info "$BIN" --config "$WORK/room.yaml" --data-dir "$WORK/data" \
  --http-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --max-connections-per-ip 0 \
  2> "$WORK/rust.log" &
RUST_PID=$!
PIDS+=("$RUST_PID")
RUST_ADDR="$(wait_for "$WORK/rust.log" 'chat listening addr=[0-9.:]+' | sed 's/.*addr=//')"
echo "bench: roomcast-chat on $RUST_ADDR (pid $RUST_PID), $CLIENTS clients"
node tests/chat/bench/load.mjs --url "ws://$RUST_ADDR" --path "$SIO_PATH" --pid "$RUST_PID" \
  --clients "$CLIENTS" --tokens "$TOKENS" --fixed-rate "$FIXED_RATE" --fixed-seconds "$FIXED_SECONDS" \
  --step-seconds "$STEP_SECONDS" --max-seconds "$MAX_SECONDS" > "$WORK/rust.json"
kill "$RUST_PID"; wait "$RUST_PID" 2>/dev/null || true

# --- Node socket.io 4.8 baseline -----------------------------------------------------------------
BENCH_PATH="$SIO_PATH" node tests/chat/bench/node-server.mjs > "$WORK/node.log" 2>&1 &
NODE_PID=$!
PIDS+=("$NODE_PID")
NODE_ADDR="$(wait_for "$WORK/node.log" 'listening addr=[0-9.:]+' | sed 's/.*addr=//')"
echo "bench: node socket.io $(node -p 'require("./tests/chat/node_modules/socket.io/package.json").version') on $NODE_ADDR (pid $NODE_PID)"
node tests/chat/bench/load.mjs --url "ws://$NODE_ADDR" --path "$SIO_PATH" --pid "$NODE_PID" \
  --clients "$CLIENTS" --tokens "$TOKENS" --fixed-rate "$FIXED_RATE" --fixed-seconds "$FIXED_SECONDS" \
  --step-seconds "$STEP_SECONDS" --max-seconds "$MAX_SECONDS" > "$WORK/node.json"
kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true

node tests/chat/bench/report.mjs "$WORK/rust.json" "$WORK/node.json"
