#!/usr/bin/env bash
# The base of the runtime image (called by scripts/image.sh): a Debian root filesystem made by
# mmdebstrap from image/packages.txt, trimmed by image_trim.py to image/plugins.txt, with user
# 10001, imported into podman as localhost/roomcast-base:<hash of this file and its inputs>.
# Skipped when that tag exists. Prints the tag; leaves $WORK/base-<hash>/ with the Debian
# package list for the SBOM (debian-packages.json) and the size report (report.jsonl).
#
#   image_base.sh WORK MIRROR
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="$1"
MIRROR="$2"
SUITE=bookworm

INPUTS="$(cat image/packages.txt image/plugins.txt scripts/image_base.sh scripts/image_trim.py \
  scripts/sbom.py | sha256sum | cut -c1-16)"
BASE="localhost/roomcast-base:$INPUTS"
DIR="$WORK/base-$INPUTS"
step() { printf '==> %s\n' "$*" >&2; }

if podman image exists "$BASE" && [ -f "$DIR/debian-packages.json" ]; then
  step "base $BASE unchanged"
  echo "$BASE"
  exit 0
fi
step "base root filesystem: mmdebstrap $SUITE + $(grep -cv '^#' image/packages.txt) packages"
rm -rf "$DIR" && mkdir -p "$DIR"
ROOTFS="$DIR/rootfs"
PACKAGES="$(grep -v '^#' image/packages.txt | paste -sd, -)"
t0="$(date +%s)"
# No docs, man pages or translations (a runtime image reads none), but the copyright files
# stay: the licences travel with the binaries, and the SBOM reads them.
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  "$SUITE" "$ROOTFS" \
  "deb $MIRROR/debian $SUITE main" \
  "deb $MIRROR/debian $SUITE-updates main" \
  "deb $MIRROR/debian-security $SUITE-security main" >&2
echo "{\"mmdebstrap_seconds\": $(($(date +%s) - t0))}" > "$DIR/report.jsonl"
step "trim: plugins outside image/plugins.txt, packages ldd proves unused"
python3 scripts/image_trim.py "$ROOTFS" image/plugins.txt image/packages.txt >> "$DIR/report.jsonl"
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
chroot "$ROOTFS" useradd --uid 10001 --user-group --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin roomcast
python3 scripts/sbom.py debian "$ROOTFS" > "$DIR/debian-packages.json"
tar --sort=name --numeric-owner -C "$ROOTFS" -cf "$DIR/rootfs.tar" .
echo "{\"rootfs_tar_bytes\": $(stat -c %s "$DIR/rootfs.tar")}" >> "$DIR/report.jsonl"
podman import --quiet "$DIR/rootfs.tar" "$BASE" >/dev/null
# podman holds the layer now; the directory and tarball would only double the disk use.
rm -rf "$ROOTFS" "$DIR/rootfs.tar"
echo "{\"base_seconds\": $(($(date +%s) - t0))}" >> "$DIR/report.jsonl"
echo "$BASE"
