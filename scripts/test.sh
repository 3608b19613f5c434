#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then format, lints, the
# generated CRD, Rust tests, chart tests. Exit code is non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints its wall-clock time and the CPU time of what it ran (user + system of the
# finished children, from /proc), so a run on a shared machine still tells what a step costs.
STEP_NAME=""
STEP_WALL=$SECONDS
cpu_ticks() { local st; read -r -a st < /proc/$$/stat; echo $(( st[15] + st[16] )); }
STEP_CPU=$(cpu_ticks)
TICKS=$(getconf CLK_TCK)
step_done() {
  if [ -n "$STEP_NAME" ]; then
    printf '<== %s: %d s wall, %d s CPU\n' "$STEP_NAME" $(( SECONDS - STEP_WALL )) \
      $(( ($(cpu_ticks) - STEP_CPU) / TICKS ))
  fi
}
step() {
  step_done
  STEP_NAME="$*"
  STEP_WALL=$SECONDS
  STEP_CPU=$(cpu_ticks)
  printf '\n==> %s\n' "$*"
}
FUZZ_BUILD_PID=""
FUZZ_BUILD_LOG="$(mktemp)"
trap 'step_done; printf "total: %d s\n" "$SECONDS"; [ -z "$FUZZ_BUILD_PID" ] || kill -- "-$FUZZ_BUILD_PID" 2>/dev/null || true; rm -f "$FUZZ_BUILD_LOG"' EXIT

step "install what the suite needs (scripts/install-deps.sh)"
bash scripts/install-deps.sh

# A persistent target directory outside the clone keeps CI incremental on 2 cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# A cold build keeps about one of the two cores busy (long chains of crates that wait for each
# other), so the fuzz targets' build, a second build of every worker dependency with coverage
# instrumentation, runs beside clippy and nextest at a lower priority and fills the other core;
# the fuzz step below waits for it. Warm, it is a no-op.
# Its own process group (setsid), so a failing run stops its cargo and rustc too.
setsid nice -n 10 bash scripts/fuzz.sh build >"$FUZZ_BUILD_LOG" 2>&1 &
FUZZ_BUILD_PID=$!

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo nextest (unit, builder, reconcile and integration tests)"
cargo nextest run --workspace --locked --no-fail-fast

step "patched RTMP libraries (third_party/): upstream's tests and our regression tests"
for crate in rml_amf0 rml_rtmp; do
  (cd "third_party/$crate" && cargo test --locked --quiet)
done

step "fuzz: every target replays its committed corpus, then explores for 20 s (scripts/fuzz.sh)"
if ! wait "$FUZZ_BUILD_PID"; then
  FUZZ_BUILD_PID=""
  cat "$FUZZ_BUILD_LOG"
  echo "fuzz: building the targets failed (above)" >&2
  exit 1
fi
FUZZ_BUILD_PID=""
tail -3 "$FUZZ_BUILD_LOG"
bash scripts/fuzz.sh 20

step "cargo build --bins (for the tests that run the binaries)"
# With the features nextest built the tests with (`--tests` unifies the dev-dependencies'
# features), so the binaries reuse what it compiled: `--bins` alone resolves features without
# them and compiles about 150 crates again, 4 to 5 minutes of a cold run. `--examples` brings the
# recorder tests' S3 server, a process the cluster-in-a-box pods record into.
cargo build --workspace --bins --examples --tests --locked

step "container image from Debian packages, no registry (scripts/image.sh), then tests/image"
# The debug binaries just built: a cold release build would add about 40 minutes on 2 cores.
# The trimmed base is cached in podman by the hash of its inputs.
bash scripts/install-deps.sh image
ROOMCAST_IMAGE_PROFILE=debug bash scripts/image.sh
python3 -m pytest -q -rs -p no:cacheprovider tests/image

step "cluster in a box: the real operator against the API server stand-in, its pods run by the mini-kubelet (tests/cluster)"
# Its own run: tests/chart has a conftest module of the same name. test_pods.py runs the pods
# from the image built just above.
ROOMCAST_OPERATOR_BIN="$CARGO_TARGET_DIR/debug/roomcast-operator" \
  python3 -m pytest -q -rs -p no:cacheprovider tests/cluster

step "chat: Node tests (official socket.io-client) against the real roomcast-chat binary"
# The tests start their own redis-server and secantusd-py on free loopback ports.
ROOMCAST_CHAT_BIN="$CARGO_TARGET_DIR/debug/roomcast-chat" \
  node --test --test-concurrency=1 tests/chat/test/*.test.mjs

step "watch page: Chromium + playwright-core against roomcast dev with ffmpeg publishing"
ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast" \
  node --test --test-concurrency=1 tests/browser/

step "hostile RTMP peers against the real roomcast dev (tests/hostile)"
# Its own run: each pytest run imports one `conftest` module by that name.
ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast" \
  python3 -m pytest -q -rs -p no:cacheprovider tests/hostile

step "Helm chart, rendered children against Kubernetes 1.33 schemas, end-to-end (skips without a cluster)"
python3 -m pytest -q -rs -p no:cacheprovider tests/chart tests/render tests/e2e
