#!/usr/bin/env bash
# Benchmark of roomcast-media against nginx + libnginx-mod-rtmp (HLS on, same fragment length)
# and ffmpeg's CLI encoding the same ladder. Not a test: prints figures and ratios.
#
#   bash scripts/bench-media.sh            # SEGMENT=2 PUBLISH_SECONDS=20 by default
#
# Installs its own extras (nginx, libnginx-mod-rtmp, wrk) and builds the release binary.
# Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
bash scripts/install-deps.sh
extras=()
for pkg in nginx libnginx-mod-rtmp wrk; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || extras+=("$pkg")
done
if [ "${#extras[@]}" -gt 0 ]; then
  echo "bench: apt-get install ${extras[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${extras[@]}"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
cargo build --release --locked -p roomcast-media
exec python3 scripts/bench_media.py "$CARGO_TARGET_DIR/release/roomcast-media"
