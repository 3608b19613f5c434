#!/usr/bin/env bash
# Installs what building and testing roomcast needs on Debian, idempotently: nothing is
# downloaded when everything is already there. Runs as root (CI) or through sudo.
#
#   install-deps.sh          everything the test suite needs
#   install-deps.sh demo     only what `roomcast dev` needs (build, GStreamer, ffmpeg)
#   install-deps.sh image    that, plus what scripts/image.sh needs to build and run the image
#                            without a registry or a Docker engine (mmdebstrap, podman, runc)
set -euo pipefail
MODE="${1:-test}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  pkg-config
  # Kept in step with the Dockerfile's runtime stage.
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg
)
TEST_APT_PACKAGES=(
  # chat: Redis for the two-replica scale-out tests (socketioxide-redis needs RESP3, Redis >= 7).
  redis-server
  # watch page: the browser tests drive Debian's Chromium (no browser download from npm).
  chromium fonts-dejavu-core
  # scripts/bench-ingest.sh: a plain TLS terminator, the baseline of the gateway's RTMPS figure.
  socat
)

IMAGE_APT_PACKAGES=(
  # scripts/image.sh: a Debian root filesystem straight from the archive, imported and run by
  # podman; runc because crun refuses the hybrid cgroup layout of these machines.
  mmdebstrap podman runc
  # tests/cluster's mini-kubelet: a network namespace per pod (ip), the API server's CA (openssl).
  iproute2 openssl
)

if [ "$MODE" = "test" ]; then APT_PACKAGES+=("${TEST_APT_PACKAGES[@]}"); fi
if [ "$MODE" = "image" ]; then APT_PACKAGES+=("${IMAGE_APT_PACKAGES[@]}"); fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install Rust 1.95 with rustup first" >&2
  exit 1
fi
if [ "$MODE" = "demo" ] || [ "$MODE" = "image" ]; then exit 0; fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: cargo install cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Python tools for the chart tests (the real Helm library and offline Kubernetes schemas).
# Pinned versions: pip answers from the installed set without asking the registry.
PY_REQUIREMENTS="$(dirname "$0")/../tests/chart/requirements.txt"
if [ -f "$PY_REQUIREMENTS" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$PY_REQUIREMENTS"
fi

# cluster: the API server stand-in's few libraries (tests/cluster/requirements.txt).
CLUSTER_PY_REQUIREMENTS="$(dirname "$0")/../tests/cluster/requirements.txt"
if [ -f "$CLUSTER_PY_REQUIREMENTS" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$CLUSTER_PY_REQUIREMENTS"
fi

# chat: the MongoDB-compatible test server (secantusd-py) used by the store tests. A
# pre-release, so pinned exactly (pip never picks a pre-release by itself).
CHAT_PY_REQUIREMENTS="$(dirname "$0")/../tests/chat/requirements.txt"
if ! command -v secantusd-py >/dev/null 2>&1 || ! python3 -m pip show -q secantusdb >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$CHAT_PY_REQUIREMENTS"
fi

# chat: Node.js and the official socket.io client (plus socket.io for the benchmark's baseline
# server), installed from the committed lock file. Skipped when node_modules matches the lock.
if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: apt-get install nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# Install a folder's npm packages from its committed lock file; skipped when node_modules
# already matches the lock.
npm_ci() {
  local dir="$1"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.roomcast-lock" 2>/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.roomcast-lock)
  fi
}
npm_ci "$(dirname "$0")/../tests/chat"
# watch page: playwright-core (the driver only; the browser is Debian's chromium).
npm_ci "$(dirname "$0")/../tests/browser"
