"""Benchmark: one room live with an honest ffmpeg publisher, first quiet, then while 500 hostile
connections run against the RTMP port. Prints, for each phase: the live room's segment cadence
(segments, mean and longest gap), the worker's CPU and peak RSS, and how long an honest client
waits to connect (TCP connect + handshake + connect's _result). Not a test: prints figures.

    python3 tests/hostile/bench.py [--seconds 60] [--attackers 500]   (ROOMCAST_BIN selects the binary)
"""

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import conftest  # noqa: E402
import rtmp_client as rtmp  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
# Attackers spread over 32 loopback addresses so that the per-address cap (16) does not refuse
# them all at accept: 32 x 16 = 512 connections can be held at once.
ATTACK_ADDRESSES = [f"127.0.1.{i}" for i in range(1, 33)]
HONEST_PROBE = "127.0.0.3"


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def honest_wait(port):
    """Seconds from TCP connect to connect's _result, as an encoder sees it."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(HONEST_PROBE, 0))
    writer.write(b"\x03" + b"\x00" * 8 + os.urandom(1528))
    s = await reader.readexactly(1 + 1536 + 1536)
    writer.write(s[1:1537] + rtmp.connect_command())
    data = b""
    while b"_result" not in data:
        part = await reader.read(65536)
        if not part:
            raise EOFError("closed before connect's _result")
        data += part
    waited = time.monotonic() - started
    writer.close()
    return waited


async def attacker(i, port, stop):
    """One hostile connection, reopened whenever the worker closes it; four patterns in turn:
    a byte a second (never finishes the handshake), a declared 16 MiB message trickled in,
    random bytes after the handshake, a handshake and then silence."""
    pattern = i % 4
    source = ATTACK_ADDRESSES[i % len(ATTACK_ADDRESSES)]
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0))
            if pattern == 0:
                while not stop.is_set():
                    writer.write(b"\x03")
                    await writer.drain()
                    await asyncio.sleep(1)
                    if reader.at_eof():
                        break
                continue
            writer.write(b"\x03" + os.urandom(1536))
            s = await asyncio.wait_for(reader.readexactly(1 + 1536 + 1536), 15)
            writer.write(s[1:1537])
            if pattern == 1:
                writer.write(rtmp.header0(3, 0xFFFFFF, 9))
            while not stop.is_set() and not reader.at_eof():
                if pattern == 1:
                    writer.write(b"\xC3" + b"\x00" * 128)
                elif pattern == 2:
                    writer.write(os.urandom(4096))
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(65536), 0.5) == b"":
                        break
                except asyncio.TimeoutError:
                    pass
        except (OSError, EOFError, asyncio.TimeoutError):
            await asyncio.sleep(0.2)


async def phase(dev, watch, seconds, attackers):
    stop = asyncio.Event()
    tasks = [asyncio.create_task(attacker(i, dev.rtmp_port, stop)) for i in range(attackers)]
    await asyncio.sleep(3 if attackers else 0)  # let the attack build up
    started, cpu0 = time.monotonic(), cpu_seconds(dev.proc.pid)
    first_seq = watch.highest
    waits, rss = [], []
    while time.monotonic() - started < seconds:
        try:
            waits.append(await asyncio.wait_for(honest_wait(dev.rtmp_port), 30))
        except (OSError, EOFError, asyncio.TimeoutError):
            waits.append(float("inf"))  # refused (e.g. connections_total) or timed out
        rss.append(dev.rss_mib())
        await asyncio.sleep(2)
    wall = time.monotonic() - started
    cpu = cpu_seconds(dev.proc.pid) - cpu0
    segments = watch.highest - first_seq
    marks = [started] + [t for t in watch.grew_at if t >= started] + [time.monotonic()]
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=10) if tasks else None
    finite = [w for w in waits if w != float("inf")]
    return {
        "segments": segments,
        "seg_per_s": segments / wall,
        "mean_gap": statistics.mean(gaps[1:-1]) if len(gaps) > 2 else float("nan"),
        "max_gap": max(gaps),
        "cpu_pct": 100 * cpu / wall,
        "rss_peak": max(rss),
        "wait_median_ms": 1000 * statistics.median(finite) if finite else float("inf"),
        "probes": len(waits),
        "wait_max_ms": 1000 * max(waits),
        "failed_connects": len(waits) - len(finite),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--attackers", type=int, default=500)
    args = parser.parse_args()
    # Default limits: what production runs.
    dev, data = conftest.start_dev()
    key = dev.keys["shows/lobby"]
    publisher = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", str(3 * args.seconds + 120), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv",
         f"rtmp://127.0.0.1:{dev.rtmp_port}/live/{key}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    watch = conftest.PlaylistWatch(dev.url("/shows/lobby/hls/source/index.m3u8")).start()
    try:
        watch.wait_for_segments(3)
        quiet = asyncio.run(phase(dev, watch, args.seconds, 0))
        print("quiet:", quiet, flush=True)
        attack = asyncio.run(phase(dev, watch, args.seconds, args.attackers))
        print("attack:", attack, flush=True)
        refused = {r: dev.refused(r) for r in
                   ("connections_per_ip", "connections_total", "handshake_timeout",
                    "publish_timeout", "idle_timeout", "message_too_large",
                    "evicted_at_capacity", "no_keyframe", "bitrate_exceeded")}
        print(f"binary {conftest.roomcast_bin()}, {args.seconds} s per phase, 1 s segments")
        print(f"{'':22}{'quiet':>12}{'attack (' + str(args.attackers) + ')':>16}")
        rows = [("segments", "segments", "{:.0f}"), ("segments/s", "seg_per_s", "{:.2f}"),
                ("mean gap s", "mean_gap", "{:.2f}"), ("longest gap s", "max_gap", "{:.2f}"),
                ("worker CPU %", "cpu_pct", "{:.0f}"), ("worker RSS peak MiB", "rss_peak", "{:.0f}"),
                ("honest wait median ms", "wait_median_ms", "{:.1f}"),
                ("honest wait max ms", "wait_max_ms", "{:.1f}"),
                ("honest probes", "probes", "{:.0f}"),
                ("honest probes refused", "failed_connects", "{:.0f}")]
        for name, k, fmt in rows:
            print(f"{name:22}{fmt.format(quiet[k]):>12}{fmt.format(attack[k]):>16}")
        print("refused by reason:", refused)
        print("honest session broken:", watch.broken or "no")
        print("worker alive:", dev.alive())
    finally:
        watch.stop()
        publisher.terminate()
        publisher.wait(timeout=10)
        conftest.stop_dev(dev, data)


if __name__ == "__main__":
    main()
