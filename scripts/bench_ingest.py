#!/usr/bin/env python3
"""Driver of scripts/bench-ingest.sh: one publisher straight to a room's media worker, then
through roomcast-ingest over RTMP and over RTMPS, side by side in one run on 127.0.0.1.

Two phases, the ways in interleaved, every publish (ffmpeg -re -c copy of a pre-encoded FLV)
to a fresh room:
  1. CPU: ROUNDS publishes of PUBLISH_SECONDS per way in: CPU of roomcast-media over the
     publish window (its passthrough cost: the source rendition) and of roomcast-ingest over
     the same window (the relay's cost; about zero when publishing direct).
  2. First segment: FIRST_ROUNDS publishes of 5 s per way in: time from starting the publisher
     to the first segment in the room's media playlist. It varies by a hundred ms or more with
     ffmpeg's start on a busy machine, hence many short rounds and their median.
  3. Publish setup: SETUP_ROUNDS times per way in, a minimal RTMP client (tests/hostile's)
     times TCP connect (+ TLS) + handshake + connect + createStream + publish until
     NetStream.Publish.Start: the gateway's own share of the time to the first segment,
     without ffmpeg's start-up in it.
and then the relay's mean CPU per publisher in % of one core next to the passthrough's, and the time
the gateway adds to the first playable segment (medians). Goals (issue #15): relay CPU <= passthrough CPU,
and under 50 ms added to the first segment.
"""
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "hostile"))
import rtmp_client  # noqa: E402 - the hostile suite's minimal RTMP client
from bench_media import (  # noqa: E402 - the shared measuring helpers
    FPS, GOP, SECONDS, SEGMENT, SIZE, cpu_seconds, cpu_seconds_precise, encode_input, free_port,
    get, publish, segments, stop, wait_port, write_room,
)

ROUNDS = int(os.environ.get("ROUNDS", "2"))
SETUP_ROUNDS = int(os.environ.get("SETUP_ROUNDS", "20"))
FIRST_ROUNDS = int(os.environ.get("FIRST_ROUNDS", "10"))
FIRST_SECONDS = 5
# `tls-only`: socat terminating TLS in front of the media worker, with no routing or relay: what
# any RTMPS front door costs, so the gateway's own share of the RTMPS figure can be told apart.
WAYS = ["direct", "rtmp", "rtmps", "tls-only"]
ROUTING_KEY = b"bench-routing-key-0123456789abcdef0123"


def cpu(pid):
    """CPU seconds of a process: schedstat (ns) unless a thread exited (then the tick count)."""
    return cpu_seconds([pid]), cpu_seconds_precise([pid])


def cpu_since(pid, before):
    ticks, precise = cpu(pid)
    d_ticks, d_precise = ticks - before[0], precise - before[1]
    return d_precise if d_ticks <= d_precise + 0.03 else d_ticks


def measure(url, playlist_url, media_pid, gateway_pid, media):
    """Publish once: (seconds to the first segment, media CPU s, gateway CPU s, wall s)."""
    m0, g0 = cpu(media_pid), cpu(gateway_pid)
    t0 = time.monotonic()
    pub = publish(url, media)
    first = None
    while pub.poll() is None:
        if first is None:
            status, body = get(playlist_url, timeout=1)
            if status == 200 and segments(body.decode(errors="replace")):
                first = time.monotonic() - t0
            time.sleep(0.005)
        else:
            time.sleep(0.2)
    wall = time.monotonic() - t0
    if pub.returncode != 0:
        raise SystemExit(f"publisher to {url.split('/live/')[0]} failed ({pub.returncode})")
    return first, cpu_since(media_pid, m0), cpu_since(gateway_pid, g0), wall


# Made once: loading a context costs tens of ms that are the client's, not the server's.
TLS_CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
TLS_CLIENT.check_hostname = False
TLS_CLIENT.verify_mode = ssl.CERT_NONE  # the bench's throwaway self-signed certificate


def publish_setup(port, key, tls):
    """Seconds from opening the connection to NetStream.Publish.Start."""
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        sock = TLS_CLIENT.wrap_socket(sock, server_hostname="localhost")
    try:
        rtmp_client.handshake(sock)
        sock.sendall(rtmp_client.connect_command())
        rtmp_client.read_until(sock, b"NetConnection.Connect.Success")
        sock.sendall(rtmp_client.publish_commands(key))
        rtmp_client.read_until(sock, b"NetStream.Publish.Start")
        return time.monotonic() - t0
    finally:
        sock.close()


def main():
    media_bin, ingest_bin, profile = sys.argv[1], sys.argv[2], sys.argv[3]
    work = tempfile.mkdtemp(prefix="roomcast-bench-ingest-")
    procs = []
    try:
        media = os.path.join(work, "input.flv")
        print(f"bench-ingest ({profile} build): {SECONDS} s of {SIZE}@{FPS} H.264+AAC 2 Mbit/s, "
              f"{SEGMENT} s segments, GOP {GOP}, {ROUNDS} round(s) per way in")
        short = os.path.join(work, "short.flv")
        encode_input(media)
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", media,
                        "-t", str(FIRST_SECONDS), "-c", "copy", short], check=True)
        # One passthrough room per (way, round): every publish starts a fresh session.
        rooms = [(way, r) for r in range(ROUNDS + FIRST_ROUNDS) for way in WAYS]
        configs = []
        for way, r in rooms:
            name, key = f"{way}-{r}", f"bench-{way}-{r}-key-0123456789"
            configs.append(write_room(work, name, key, "    - {name: source}\n", grace=1))
        m_rtmp, m_http = free_port(), free_port()
        env = dict(os.environ, RUST_LOG="warn")
        media_proc = subprocess.Popen(
            [media_bin, "--config", ",".join(configs), "--rtmp-addr", f"127.0.0.1:{m_rtmp}",
             "--http-addr", f"127.0.0.1:{m_http}", "--metrics-addr", ""], env=env)
        procs.append(media_proc)
        wait_port(m_http)

        # The gateway: routes file of keyed hashes, a throwaway certificate.
        with open(os.path.join(work, "routing.key"), "wb") as f:
            f.write(ROUTING_KEY)
        table = {"version": 1, "routes": []}
        for way, r in rooms:
            key = f"bench-{way}-{r}-key-0123456789"
            digest = hmac.new(ROUTING_KEY, key.encode(), hashlib.sha256).hexdigest()
            table["routes"].append(
                {"keyHash": digest, "room": f"bench/{way}-{r}", "backend": f"127.0.0.1:{m_rtmp}"})

        with open(os.path.join(work, "routes.json"), "w") as f:
            json.dump(table, f)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", "/CN=localhost", "-days", "1",
             "-keyout", os.path.join(work, "tls.key"), "-out", os.path.join(work, "tls.crt")],
            check=True, capture_output=True,
        )
        g_rtmp, g_rtmps, g_ops = free_port(), free_port(), free_port()
        gateway = subprocess.Popen(
            [ingest_bin, "--rtmp-listen", f"127.0.0.1:{g_rtmp}",
             "--rtmps-listen", f"127.0.0.1:{g_rtmps}", "--ops-listen", f"127.0.0.1:{g_ops}",
             "--tls-cert-file", os.path.join(work, "tls.crt"),
             "--tls-key-file", os.path.join(work, "tls.key"),
             "--routing-key-file", os.path.join(work, "routing.key"),
             "--routes-file", os.path.join(work, "routes.json"),
             "--key-attempts-per-minute", "1000", "--drain-seconds", "1"], env=env)
        procs.append(gateway)
        deadline = time.time() + 20
        while get(f"http://127.0.0.1:{g_ops}/readyz")[0] != 200:
            if time.time() > deadline:
                raise SystemExit("the gateway never got ready")
            time.sleep(0.1)

        t_port = free_port()
        procs.append(subprocess.Popen(
            ["socat", f"OPENSSL-LISTEN:{t_port},bind=127.0.0.1,reuseaddr,fork,verify=0,"
                      f"cert={os.path.join(work, 'tls.crt')},key={os.path.join(work, 'tls.key')}",
             f"TCP:127.0.0.1:{m_rtmp}"]))
        wait_port(t_port)
        urls = {
            "direct": f"rtmp://127.0.0.1:{m_rtmp}/live",
            "rtmp": f"rtmp://127.0.0.1:{g_rtmp}/live",
            "rtmps": f"rtmps://127.0.0.1:{g_rtmps}/live",
            "tls-only": f"rtmps://127.0.0.1:{t_port}/live",
        }
        results = {way: [] for way in WAYS}
        firsts = {way: [] for way in WAYS}
        print(f"\n  {'way in':<8} {'round':>5} {'first segment':>14} {'media CPU':>10} {'gateway CPU':>12}",
              flush=True)
        for way, r in rooms:
            key = f"bench-{way}-{r}-key-0123456789"
            cpu_round = r < ROUNDS
            first, m_cpu, g_cpu, wall = measure(
                f"{urls[way]}/{key}",
                f"http://127.0.0.1:{m_http}/bench/{way}-{r}/hls/source/index.m3u8",
                media_proc.pid, gateway.pid, media if cpu_round else short)
            if cpu_round:
                results[way].append((first, m_cpu, g_cpu, wall))
                print(f"  {way:<8} {r:>5} {first:>12.3f} s {m_cpu:>8.3f} s {g_cpu:>10.3f} s", flush=True)
            else:
                firsts[way].append(first)
            time.sleep(1.5)
        for way in WAYS:
            listed = " ".join(f"{1000 * f:.0f}" for f in sorted(firsts[way]))
            print(f"  first segment, {way:<6} ms: {listed}")
        ports = {"direct": (m_rtmp, False), "rtmp": (g_rtmp, False), "rtmps": (g_rtmps, True),
                 "tls-only": (t_port, True)}
        setups = {way: [] for way in WAYS}
        setup_key = "bench-direct-0-key-0123456789"
        for _ in range(SETUP_ROUNDS):
            for way in WAYS:
                port, tls = ports[way]
                setups[way].append(publish_setup(port, setup_key, tls))
                time.sleep(0.05)

        def mean(way, i):
            vals = [x[i] for x in results[way]]
            return sum(vals) / len(vals)

        # The first segment's time varies by a few hundred ms with ffmpeg's start (process,
        # file, first keyframe); the median of the rounds resists one slow start.
        def median(way):
            vals = sorted(firsts[way])
            mid = len(vals) // 2
            return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2

        wall = mean("direct", 3)
        passthrough = 100 * mean("direct", 1) / wall
        print(f"\nper publisher, % of one core over the {wall:.1f} s publish window:")
        print(f"  media passthrough (direct)           {passthrough:6.2f} %")
        ok = True
        for way in ("rtmp", "rtmps"):
            relay = 100 * mean(way, 2) / mean(way, 3)
            media_via = 100 * mean(way, 1) / mean(way, 3)
            added = 1000 * (median(way) - median("direct"))
            verdict_cpu = "ok" if relay <= passthrough else "OVER"
            verdict_t = "ok" if added < 50 else "OVER"
            ok = ok and verdict_cpu == "ok" and verdict_t == "ok"
            print(f"  gateway relay over {way:<5}             {relay:6.2f} %  "
                  f"(media behind it {media_via:5.2f} %)  relay <= passthrough: {verdict_cpu}")
            print(f"  first segment via {way:<5} {1000 * median(way):7.0f} ms vs direct "
                  f"{1000 * median('direct'):5.0f} ms (medians): added {added:+5.0f} ms "
                  f"(< 50 ms: {verdict_t})")
        tls_front = 1000 * (median("tls-only") - median("direct"))
        print(f"  first segment via socat's TLS alone (no gateway) {1000 * median('tls-only'):7.0f} ms: "
              f"added {tls_front:+5.0f} ms, so the gateway's own share over rtmps is "
              f"{1000 * (median('rtmps') - median('tls-only')):+5.0f} ms")
        setup_median = {way: sorted(v)[len(v) // 2] for way, v in setups.items()}
        print(f"\npublish setup (connect to NetStream.Publish.Start), median of {SETUP_ROUNDS}: "
              f"direct {1000 * setup_median['direct']:.1f} ms, via rtmp "
              f"{1000 * setup_median['rtmp']:.1f} ms, via rtmps {1000 * setup_median['rtmps']:.1f} ms, "
              f"via socat's TLS alone {1000 * setup_median['tls-only']:.1f} ms (TLS handshake included)")
        print("\ngoals met" if ok else "\ngoals NOT met")
    finally:
        stop(procs, timeout=10)


if __name__ == "__main__":
    main()
