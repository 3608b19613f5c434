#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz + libFuzzer) of every parser a network peer feeds.
#
#   scripts/fuzz.sh                 every target for 10 minutes each
#   scripts/fuzz.sh 30              every target for 30 s (CI runs this)
#   scripts/fuzz.sh 600 rtmp_session  one target
#   scripts/fuzz.sh build           only build the targets (CI starts this early, see test.sh)
#
# Runs on stable Rust: `--sanitizer none` (AddressSanitizer needs nightly; Rust code without
# `unsafe` gets its memory safety from the compiler, and libFuzzer still catches panics,
# aborts, stack overflows, timeouts and out-of-memory). The committed seeds in
# fuzz/corpus/<target> are copied to a scratch corpus, so a run never dirties the checkout.
# A crash exits non-zero and leaves its input under fuzz/artifacts/<target>/; make it a
# regression test, then commit it to fuzz/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-600}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

export CARGO_TARGET_DIR="${ROOMCAST_FUZZ_TARGET_DIR:-$HOME/.cache/roomcast-fuzz-target}"
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  mapfile -t TARGETS < <(cd fuzz && cargo fuzz list)
fi

cd fuzz
cargo fuzz build --sanitizer none -O
if [ "$SECONDS_PER_TARGET" = "build" ]; then exit 0; fi
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
status=0
for target in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$target" "artifacts/$target"
  cp -r "corpus/$target/." "$SCRATCH/$target/" 2>/dev/null || true
  echo "==> fuzz $target for ${SECONDS_PER_TARGET}s"
  if ! cargo fuzz run --sanitizer none -O "$target" "$SCRATCH/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=1024 \
      -timeout=10 -print_final_stats=1 2>"$SCRATCH/$target.log"; then
    status=1
    tail -40 "$SCRATCH/$target.log"
    echo "fuzz: $target found a crash; its input is in fuzz/artifacts/$target/" >&2
  fi
  # Executions per second and coverage, from libFuzzer's final line and stats.
  grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" \
    "$SCRATCH/$target.log" | sed "s/^/  $target: /" || true
done
exit "$status"
