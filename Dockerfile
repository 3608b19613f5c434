# syntax=docker/dockerfile:1
# One image with every roomcast binary (roomcast-operator, roomcast-media, roomcast-chat,
# roomcast-ingest, roomcast, crdgen: whichever the workspace has). The Helm chart runs it as
# ghcr.io/roomcast/roomcast:<appVersion> with `command: [roomcast-operator]`; the operator
# starts the media and chat workers from the same image, the chart the ingest gateway.
#
#   docker build -t ghcr.io/roomcast/roomcast:0.1.0 .
#
# For users who build with Docker. Without a registry or Docker engine, scripts/image.sh builds
# the same image from Debian packages with mmdebstrap and podman, trimmed to the plugins the
# ladder uses. The runtime packages below are image/packages.txt (tests/image fails when the two
# lists differ); build headers mirror scripts/install-deps.sh.

FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every executable cargo leaves at the top of target/release is a workspace binary, so new
# binaries ship without editing this file.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir -p /out/bin \
 && find target/release -maxdepth 1 -type f -executable -exec install -m 0755 {} /out/bin/ \; \
 && ls -l /out/bin

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin roomcast
COPY --from=builder /out/bin/ /usr/local/bin/
# scripts/image.sh puts every line below into its own image too (see image/Containerfile).
# Pods run with a read-only root filesystem and an emptyDir at /tmp: keep GStreamer's plugin
# registry cache there instead of under a home directory that does not exist.
ENV GST_REGISTRY=/tmp/gstreamer-1.0-registry.bin
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
LABEL org.opencontainers.image.source="https://github.com/roomcast/roomcast" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="roomcast: live-streaming rooms as a Kubernetes resource"
# 8080 http (/healthz, /readyz, /metrics, HLS origin), 1935 RTMP ingest, 1936 RTMPS ingest
# (the gateway; the Service maps 443 to it), 9090 worker metrics.
EXPOSE 8080 1935 1936 9090
CMD ["roomcast-operator", "run"]
