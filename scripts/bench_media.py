#!/usr/bin/env python3
"""Driver of scripts/bench-media.sh: roomcast-media vs nginx-rtmp vs ffmpeg's CLI, on 127.0.0.1.

Phases (each publisher is ffmpeg -re -c copy of one pre-encoded FLV file):
  1. nginx-rtmp, hls on: time to first playlist, live-edge lag, CPU of nginx (passthrough)
  2. roomcast-media, source-only room: the same figures
  3. roomcast-media, source + 3 encoded rungs: CPU
  4. ffmpeg CLI, same ladder (copy + 3 x264/AAC rungs to HLS): CPU
  5. wrk GET throughput on one segment and one media playlist: roomcast vs nginx (same bytes)

Knobs for iterating on one figure (the full run is the default and the one to report):
  WRK_SECONDS=6, WRK_ROUNDS=2  length of a wrk run; rounds per server, alternating, best kept
  BENCH_ONLY=ladder     phases 3 and 4 only (nginx starts but stays idle; no wrk)
  LADDER_SOURCE=0       the ladder without the source rendition, on both sides (shows what the
                        passthrough branch costs; not the comparison of issue #4)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SEGMENT = int(os.environ.get("SEGMENT", "2"))
SECONDS = int(os.environ.get("PUBLISH_SECONDS", "20"))
FPS = 30
GOP = SEGMENT * FPS
SIZE = os.environ.get("BENCH_SIZE", "854x480")
LADDER = [("360p", 360, 800, 96), ("240p", 240, 400, 64), ("144p", 144, 200, 64)]
WRK_SECONDS = int(os.environ.get("WRK_SECONDS", "6"))
WRK_ROUNDS = int(os.environ.get("WRK_ROUNDS", "2"))
ONLY_LADDER = os.environ.get("BENCH_ONLY", "") == "ladder"
LADDER_SOURCE = os.environ.get("LADDER_SOURCE", "1") != "0"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pids):
    """CPU time of the processes, dead threads included, in clock ticks (10 ms)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def cpu_seconds_precise(pids):
    """CPU time (ns resolution) of the live threads of the processes, from schedstat.

    Passthrough costs about a tenth of a second per 20 s, where 10 ms ticks are a +-10 % error.
    Threads that exit are not counted, so the result is checked against the tick count."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    return total / 1e9


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except OSError:
        return 0, b""


def segments(text):
    """[(uri, duration)] of a media playlist."""
    out, dur = [], None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            dur = float(line[8:].split(",")[0])
        elif line and not line.startswith("#") and dur is not None:
            out.append((line, dur))
            dur = None
    return out


def publish(url, media):
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", media,
         "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL,
    )


def measure_live(name, rtmp_url, playlist_url, media, pids_fn):
    """Publish once; return (first playlist s, mean lag s, max lag s, cpu s).

    CPU is the schedstat figure unless a thread exited meanwhile (the tick figure is then
    larger by more than its resolution), as GStreamer's threads do at the end of a session."""
    cpu0 = cpu_seconds(pids_fn())
    precise0 = cpu_seconds_precise(pids_fn())
    t0 = time.monotonic()
    pub = publish(rtmp_url, media)
    first = None
    durations = {}
    lags = []
    while pub.poll() is None:
        status, body = get(playlist_url, timeout=1)
        now = time.monotonic() - t0
        if status == 200:
            segs = segments(body.decode(errors="replace"))
            if segs:
                if first is None:
                    first = now
                for uri, d in segs:
                    durations[uri] = d
                edge = sum(durations.values())
                if now > SEGMENT * 3:
                    lags.append(now - edge)
        time.sleep(0.1)
    cpu = cpu_seconds(pids_fn()) - cpu0
    precise = cpu_seconds_precise(pids_fn()) - precise0
    if cpu <= precise + 0.03:
        cpu = precise
    mean = sum(lags) / len(lags) if lags else float("nan")
    worst = max(lags) if lags else float("nan")
    print(f"  {name:<16} first playlist {fmt(first)} s, live-edge lag mean {mean:.2f} s max {worst:.2f} s, "
          f"CPU {cpu:.3f} s for {SECONDS} s of media")
    return first, mean, worst, cpu


def write_room(rdir, room, key, renditions, grace):
    """A media worker config for room `bench/<room>` with `key` and `renditions` (YAML list
    lines); its path."""
    with open(os.path.join(rdir, f"{room}.key"), "w") as f:
        f.write(key)
    path = os.path.join(rdir, f"{room}.yaml")
    with open(path, "w") as f:
        f.write(f"""room: {{namespace: bench, name: {room}}}
ingest: {{streamKeyFile: {rdir}/{room}.key, maxBitrateKbps: 8000, reconnectGraceSeconds: {grace}}}
transcode:
  segmentSeconds: {SEGMENT}
  dvrWindowSeconds: 600
  renditions:
{renditions}playback: {{pathPrefix: /bench/{room}, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 86400}}
""")
    return path


def encode_input(path):
    """The publishers' input: SECONDS of SIZE@FPS H.264 (2 Mbit/s, GOP = one segment) + AAC."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={FPS}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", str(SECONDS), "-c:v", "libx264", "-preset", "veryfast", "-b:v", "2000k",
         "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "0",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", path],
        check=True,
    )


def fmt(v):
    return "n/a" if v is None else f"{v:.2f}"


def wrk(url):
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{WRK_SECONDS}s", url], capture_output=True, text=True
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def stop(procs, timeout):
    """SIGTERM every process first (they shut down in parallel), then wait; kill stragglers."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def ladder(r_rtmp, r_http, rc, media, work):
    """Phases 3 and 4: CPU of roomcast's ladder room and of ffmpeg's CLI doing the same job."""
    names = ["source"] * LADDER_SOURCE + [n for n, *_ in LADDER]
    print(f"\nladder ({', '.join(names)})")
    _, _, _, r_ladder = measure_live(
        "roomcast-media", f"rtmp://127.0.0.1:{r_rtmp}/live/ladder-key",
        f"http://127.0.0.1:{r_http}/bench/ladder/hls/{names[0]}/index.m3u8", media, lambda: [rc.pid])
    fdir = os.path.join(work, "ffmpeg")
    os.makedirs(fdir)
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", media]
    if LADDER_SOURCE:
        args += ["-map", "0:v", "-map", "0:a", "-c", "copy", "-f", "hls", "-hls_time", str(SEGMENT),
                 "-hls_list_size", "0", os.path.join(fdir, "source.m3u8")]
    for n, h, v, a in LADDER:
        args += ["-map", "0:v", "-map", "0:a", "-vf", f"scale=-2:{h}", "-c:v", "libx264",
                 "-preset", "veryfast", "-tune", "zerolatency", "-b:v", f"{v}k",
                 # x264enc's default rate control: CBR with a 600 ms VBV buffer.
                 "-maxrate", f"{v}k", "-bufsize", f"{v * 6 // 10}k", "-g", str(GOP),
                 "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "0", "-c:a", "aac",
                 "-b:a", f"{a}k", "-f", "hls", "-hls_time", str(SEGMENT), "-hls_list_size", "0",
                 os.path.join(fdir, f"{n}.m3u8")]
    children_cpu()  # baseline: publishers and the input encode so far
    t0 = time.monotonic()
    ff = subprocess.run(args)
    ff_cpu = children_cpu()
    print(f"  {'ffmpeg CLI':<16} CPU {ff_cpu:.2f} s for {SECONDS} s of media "
          f"(wall {time.monotonic() - t0:.1f} s, exit {ff.returncode})")
    return r_ladder, ff_cpu


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="roomcast-bench-")
    procs = []
    try:
        media = os.path.join(work, "input.flv")
        print(f"bench: {SECONDS} s of {SIZE}@{FPS} H.264+AAC, {SEGMENT} s segments, GOP {GOP}")
        encode_input(media)

        # nginx with the RTMP module.
        n_rtmp, n_http = free_port(), free_port()
        ndir = os.path.join(work, "nginx")
        os.makedirs(os.path.join(ndir, "hls"))
        os.makedirs(os.path.join(ndir, "www"))
        os.chmod(work, 0o755)
        conf = os.path.join(ndir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 2;
daemon off;
error_log {ndir}/error.log;
pid {ndir}/nginx.pid;
events {{ worker_connections 1024; }}
rtmp {{
  server {{
    listen 127.0.0.1:{n_rtmp};
    chunk_size 4096;
    application live {{
      live on; record off;
      hls on; hls_path {ndir}/hls; hls_fragment {SEGMENT}s; hls_playlist_length 600s;
    }}
  }}
}}
http {{
  access_log off;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{
    listen 127.0.0.1:{n_http};
    location /hls {{ root {ndir}; add_header Cache-Control no-cache; }}
    location /www {{ root {ndir}; }}
  }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", conf, "-p", ndir], stderr=subprocess.DEVNULL)
        procs.append(nginx)
        wait_port(n_http)
        nginx_pids = lambda: [nginx.pid] + children(nginx.pid)

        # roomcast-media with a passthrough room and a ladder room.
        r_rtmp, r_http = free_port(), free_port()
        rdir = os.path.join(work, "roomcast")
        os.makedirs(rdir)
        configs = []
        for room, key, rungs in [("pass", "pass-key", []), ("ladder", "ladder-key", LADDER)]:
            source = room == "pass" or LADDER_SOURCE
            rend = ("    - {name: source}\n" if source else "") + "".join(
                f"    - {{name: {n}, height: {h}, videoKbps: {v}, audioKbps: {a}}}\n" for n, h, v, a in rungs)
            configs.append(write_room(rdir, room, key, rend, grace=120))
        env = dict(os.environ, RUST_LOG="warn")
        rc = subprocess.Popen(
            [binary, "--config", ",".join(configs), "--rtmp-addr", f"127.0.0.1:{r_rtmp}",
             "--http-addr", f"127.0.0.1:{r_http}", "--metrics-addr", ""],
            env=env,
        )
        procs.append(rc)
        wait_port(r_http)

        if ONLY_LADDER:
            r_ladder, ff_cpu = ladder(r_rtmp, r_http, rc, media, work)
            print(f"\n  ladder CPU vs ffmpeg CLI      {r_ladder / max(ff_cpu, 0.01):.2f}x (<= 1.0x)")
            return
        print("\npassthrough (publish -> HLS, source only)")
        n_first, n_lag, n_worst, n_cpu = measure_live(
            "nginx-rtmp", f"rtmp://127.0.0.1:{n_rtmp}/live/bench",
            f"http://127.0.0.1:{n_http}/hls/bench.m3u8", media, nginx_pids)
        r_first, r_lag, r_worst, r_cpu = measure_live(
            "roomcast-media", f"rtmp://127.0.0.1:{r_rtmp}/live/pass-key",
            f"http://127.0.0.1:{r_http}/bench/pass/hls/source/index.m3u8", media, lambda: [rc.pid])

        r_ladder, ff_cpu = ladder(r_rtmp, r_http, rc, media, work)

        print(f"\nHLS GET throughput (wrk -t2 -c32 -d{WRK_SECONDS}s, same bytes)")
        pl_status, pl = get(f"http://127.0.0.1:{r_http}/bench/pass/hls/source/index.m3u8")
        # Segment names carry the session's token (`<token>-<seq>.ts`): take it from the playlist.
        listed = [l for l in pl.decode(errors="replace").splitlines() if l.endswith(".ts")]
        seg_name = f"{listed[0].split('-', 1)[0]}-2.ts" if listed else "2.ts"
        seg_status, seg = get(f"http://127.0.0.1:{r_http}/bench/pass/hls/source/{seg_name}")
        if seg_status != 200 or pl_status != 200:
            raise SystemExit(f"roomcast segment/playlist not available ({seg_status}, {pl_status})")
        with open(os.path.join(ndir, "www", "2.ts"), "wb") as f:
            f.write(seg)
        with open(os.path.join(ndir, "www", "index.m3u8"), "wb") as f:
            f.write(pl)
        results = {}
        for what, r_url, n_url in [
            (f"segment {len(seg) // 1024} KiB", f"http://127.0.0.1:{r_http}/bench/pass/hls/source/{seg_name}",
             f"http://127.0.0.1:{n_http}/www/2.ts"),
            (f"playlist {len(pl)} B", f"http://127.0.0.1:{r_http}/bench/pass/hls/source/index.m3u8",
             f"http://127.0.0.1:{n_http}/www/index.m3u8"),
        ]:
            # Alternate the two servers and keep each one's best round: a build or a cron job
            # on the machine during one round then costs both sides alike.
            rounds = [(wrk(r_url), wrk(n_url)) for _ in range(WRK_ROUNDS)]
            r_rps, n_rps = max(r for r, _ in rounds), max(n for _, n in rounds)
            results[what] = (r_rps, n_rps)
            each = ", ".join(f"{r:.0f}/{n:.0f}" for r, n in rounds)
            print(f"  {what:<18} roomcast {r_rps:9.0f} req/s   nginx {n_rps:9.0f} req/s"
                  f"   (best of {WRK_ROUNDS}: {each})")

        print("\nratios (goal in brackets)")
        print(f"  first playlist roomcast      {fmt(r_first)} s (<= {SEGMENT + 0.5:.1f} s)  nginx {fmt(n_first)} s")
        print(f"  live-edge lag roomcast        {r_lag:.2f} s mean, {r_worst:.2f} s max (<= {3 * SEGMENT} s)"
              f"  nginx {n_lag:.2f} / {n_worst:.2f} s")
        print(f"  passthrough CPU vs nginx      {r_cpu / max(n_cpu, 0.01):.2f}x (<= 1.5x)")
        print(f"  ladder CPU vs ffmpeg CLI      {r_ladder / max(ff_cpu, 0.01):.2f}x (<= 1.0x)")
        for what, (r_rps, n_rps) in results.items():
            print(f"  GET {what:<18}      {r_rps / max(n_rps, 1):.2f}x of nginx (>= 0.8x)")
    finally:
        stop(procs, timeout=20)
        shutil.rmtree(work, ignore_errors=True)


_last_children_cpu = [0.0]


def children_cpu():
    """CPU seconds of waited-for children since the previous call."""
    r = os.times()
    total = r.children_user + r.children_system
    delta = total - _last_children_cpu[0]
    _last_children_cpu[0] = total
    return delta


if __name__ == "__main__":
    children_cpu()
    main()
