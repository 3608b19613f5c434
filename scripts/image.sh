#!/usr/bin/env bash
# Builds the roomcast runtime image from Debian packages and the release binaries, with no image
# registry and no Docker engine, loads it into podman and writes it as an OCI archive:
#
#   image_base.sh: mmdebstrap (image/packages.txt) -> image_trim.py (image/plugins.txt, ldd)
#     -> podman import = localhost/roomcast-base:<inputs>   (skipped when that tag exists)
#   podman build image/Containerfile: + target/release binaries + SBOM
#     = localhost/roomcast:<version>          (skipped when its inputs are unchanged)
#   podman save --format oci-archive -> $WORK/roomcast-<version>.oci.tar (+ .spdx.json beside it)
#
#   scripts/image.sh          build what changed; prints the image name last
#   scripts/image.sh --name   print the image name only (for harnesses), build nothing
#
# Environment: ROOMCAST_IMAGE_WORK (work dir, default ~/.cache/roomcast-image),
# CARGO_TARGET_DIR (release binaries, default ~/.cache/roomcast-target),
# ROOMCAST_DEBIAN_MIRROR (default http://deb.debian.org), ROOMCAST_IMAGE_PROFILE (release, or
# debug to reuse the test suite's debug binaries instead of a release build). Needs root and
# `scripts/install-deps.sh image` (mmdebstrap, podman, runc).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
IMAGE="localhost/roomcast:$VERSION"
if [ "${1:-}" = "--name" ]; then
  echo "$IMAGE"
  exit 0
fi

WORK="${ROOMCAST_IMAGE_WORK:-$HOME/.cache/roomcast-image}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roomcast-target}"
export CONTAINERS_CONF="$REPO/image/containers.conf"
MIRROR="${ROOMCAST_DEBIAN_MIRROR:-http://deb.debian.org}"
PROFILE="${ROOMCAST_IMAGE_PROFILE:-release}"

step() { printf '==> %s\n' "$*" >&2; }
seconds() { date +%s; }
for tool in mmdebstrap podman runc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "image.sh: $tool is missing: run scripts/install-deps.sh image" >&2
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "image.sh: run as root (mmdebstrap chroots into the root filesystem it builds)" >&2
  exit 1
fi
mkdir -p "$WORK"
STARTED="$(seconds)"

case "$PROFILE" in
  release) step "release binaries (cargo build --release)"
    cargo build --release --locked --workspace --bins ;;
  debug) step "debug binaries (cargo build)"
    cargo build --locked --workspace --bins ;;
  *) echo "image.sh: ROOMCAST_IMAGE_PROFILE is release or debug, got $PROFILE" >&2; exit 1 ;;
esac
# Every executable at the top of the profile's directory is a workspace binary (as in the
# Dockerfile).
mapfile -t BINARIES < <(find "$CARGO_TARGET_DIR/$PROFILE" -maxdepth 1 -type f -executable | sort)

# The base: Debian packages, trimmed (skipped when unchanged).
BASE="$(bash scripts/image_base.sh "$WORK" "$MIRROR")"
BASE_DIR="$WORK/base-${BASE##*:}"

# The image: binaries + SBOM on the base. Skipped when neither they nor the base changed.
CONTEXT="$WORK/context"
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/bin"
cp "${BINARIES[@]}" "$CONTEXT/bin/"
# The symbol tables are a quarter of each binary; panics keep their messages and locations.
strip --strip-unneeded "$CONTEXT"/bin/*
cp image/plugins.txt "$CONTEXT/"
{
  cat image/Containerfile
  sed -n '/^COPY --from=builder/,$p' Dockerfile | tail -n +2
} > "$CONTEXT/Containerfile"
python3 scripts/sbom.py spdx --debian "$BASE_DIR/debian-packages.json" --name "roomcast-$VERSION" \
  --version "$VERSION" > "$CONTEXT/sbom.spdx.json"
INPUTS="$( (echo "$BASE"; cd "$CONTEXT" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16)"
ARCHIVE="$WORK/roomcast-$VERSION.oci.tar"
current="$(podman image inspect --format '{{index .Labels "dev.roomcast.inputs"}}' "$IMAGE" 2>/dev/null || true)"
if [ "$current" = "$INPUTS" ] && [ -f "$ARCHIVE" ]; then
  step "image $IMAGE unchanged"
else
  step "podman build $IMAGE"
  podman build --quiet --build-arg "BASE=$BASE" --label "dev.roomcast.inputs=$INPUTS" \
    --label "org.opencontainers.image.version=$VERSION" \
    -t "$IMAGE" -f "$CONTEXT/Containerfile" "$CONTEXT" >/dev/null
  step "OCI archive $ARCHIVE"
  rm -f "$ARCHIVE"
  podman save --quiet --format oci-archive -o "$ARCHIVE" "$IMAGE"
  cp "$CONTEXT/sbom.spdx.json" "$WORK/roomcast-$VERSION.spdx.json"
  # Earlier builds: their images (dangling now, found by our label) first, then their bases.
  podman image prune --force --filter label=dev.roomcast.inputs >/dev/null
  for old in $(podman images --format '{{.Repository}}:{{.Tag}}' localhost/roomcast-base); do
    if [ "$old" != "$BASE" ]; then podman rmi "$old" >/dev/null 2>&1 || true; fi
  done
  find "$WORK" -maxdepth 1 -name 'base-*' ! -name "base-${BASE##*:}" -exec rm -rf {} +
  {
    echo "{\"image_bytes\": $(podman image inspect --format '{{.Size}}' "$IMAGE")}"
    echo "{\"oci_archive_bytes\": $(stat -c %s "$ARCHIVE")}"
  } > "$WORK/image-report.jsonl"
fi
python3 scripts/image_trim.py --report "$BASE_DIR/report.jsonl" "$WORK/image-report.jsonl" >&2
step "done in $(($(seconds) - STARTED)) s"
echo "$IMAGE"
