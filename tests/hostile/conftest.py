"""Fixtures for the adversarial suite: the real `roomcast dev` binary with two rooms, an honest
ffmpeg publisher in one of them, and a watcher that follows that room's live playlist so every
case can assert the honest room never stalled or broke while it was attacked."""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Listener limits of the worker under test: short deadlines so the cases that wait for them
# stay quick; the per-address cap is the default.
HANDSHAKE_TIMEOUT = 3
PUBLISH_TIMEOUT = 5
IDLE_TIMEOUT = 4
RTMP_MAX_CONNECTIONS_PER_IP = 16


def room_yaml(name, spec_extra=""):
    """A StreamRoom in `shows` with 1 s source-only segments (and `spec_extra` spec lines)."""
    return (
        "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\n"
        f"metadata: {{name: {name}, namespace: shows}}\nspec:\n{spec_extra}"
        "  transcode: {segmentSeconds: 1, renditions: [{name: source}]}\n"
    )


def rooms_yaml(*rooms):
    return "---\n".join(rooms)


ROOMS = rooms_yaml(room_yaml("lobby"), room_yaml("target"))


def in_ci():
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "false", "0")


def require(ok, component, why):
    """Skip politely on a developer's machine; fail in CI, where every component is installed."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"{component} is missing in CI, where every test must run: {why}")
    pytest.skip(f"{component} is missing: {why}")


def roomcast_bin():
    explicit = os.environ.get("ROOMCAST_BIN")
    if explicit:
        return pathlib.Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache/roomcast-target"))
    return pathlib.Path(target) / "debug" / "roomcast"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Dev:
    """A running `roomcast dev`: its process, ports and the two rooms' keys."""

    def __init__(self, proc, rtmp_port, http_port, keys, rtmps_port=None, fingerprint=None):
        self.proc = proc
        self.rtmp_port = rtmp_port
        self.http_port = http_port
        self.keys = keys
        # The in-process ingest gateway's RTMPS port and its certificate's SHA-256.
        self.rtmps_port = rtmps_port
        self.fingerprint = fingerprint

    def alive(self):
        return self.proc.poll() is None

    def rss_mib(self):
        return rss_kib(self.proc.pid) / 1024

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def refused(self, reason, listener="rtmp"):
        """`roomcast_media_refused_connections_total` for one listener and reason."""
        text = urllib.request.urlopen(self.url("/metrics"), timeout=5).read().decode()
        m = re.search(
            r'roomcast_media_refused_connections_total\{listener="%s",reason="%s"\} (\d+)'
            % (listener, reason),
            text,
        )
        return int(m.group(1)) if m else 0

    def refused_beyond(self, reason, before, within=2.0):
        """Wait until the count of `reason` passes `before` (it lands just after the close)."""
        deadline = time.monotonic() + within
        while self.refused(reason) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.refused(reason) - before


def start_dev(*flags, rooms_yaml=ROOMS, needs_ffmpeg=True):
    """Start `roomcast dev` with `rooms_yaml` (the two rooms unless given) and `flags`; the
    running Dev and its data dir (its stderr is `stderr.log` there). The caller stops it with
    `stop_dev`. Skips (fails in CI) without the binary, or without ffmpeg when the case
    publishes."""
    binary = roomcast_bin()
    require(binary.exists(), "the roomcast binary", f"{binary} (cargo build --bins)")
    if needs_ffmpeg:
        require(shutil.which("ffmpeg") is not None, "ffmpeg", "the publishers")
    data = tempfile.mkdtemp(prefix="roomcast-hostile-")
    rooms = pathlib.Path(data) / "rooms.yaml"
    rooms.write_text(rooms_yaml)
    proc = subprocess.Popen(
        [str(binary), "dev", "-f", str(rooms), "--data-dir", f"{data}/data",
         "--http-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0",
         "--rtmps-addr", "127.0.0.1:0", "--no-recording", *flags],
        stdout=subprocess.PIPE, stderr=open(f"{data}/stderr.log", "w"), text=True,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    keys, rtmp_port, http_port, room = {}, None, None, None
    rtmps_port, fingerprint = None, None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("rooms "):  # the line after every room's banner
            break
        if m := re.match(r"room (\S+)", line):
            room = m.group(1)
        if m := re.search(r"server rtmp://127\.0\.0\.1:(\d+)/live\s+stream key (\S+)", line):
            rtmp_port, keys[room] = int(m.group(1)), m.group(2)
        if m := re.search(r"HLS\s+http://127\.0\.0\.1:(\d+)/", line):
            http_port = int(m.group(1))
        if m := re.search(r"server rtmps://127\.0\.0\.1:(\d+)/live", line):
            rtmps_port = int(m.group(1))
        if m := re.search(r"SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", line):
            fingerprint = m.group(1)
    expected = rooms_yaml.count("kind: StreamRoom")
    assert rtmp_port and http_port and len(keys) == expected, f"no banner; see {data}/stderr.log"
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return Dev(proc, rtmp_port, http_port, keys, rtmps_port, fingerprint), data


def ffmpeg_publish(dev, room, *, seconds=600, size="320x240", audio=True, video_args=(),
                   scheme="rtmp"):
    """ffmpeg publishing a test pattern (and a tone) to `room` in real time, over `scheme`
    (`rtmp`, or `rtmps` through the in-process gateway); the Popen."""
    port = dev.rtmps_port if scheme == "rtmps" else dev.rtmp_port
    audio_input = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"] if audio else []
    audio_codec = ["-c:a", "aac"] if audio else []
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=15", *audio_input,
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "15",
         *video_args, "-pix_fmt", "yuv420p", *audio_codec, "-f", "flv",
         f"{scheme}://127.0.0.1:{port}/live/{dev.keys[room]}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_live(dev, room, within=20.0):
    """True once `room`'s source playlist lists a segment."""
    namespace, name = room.split("/")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(
                dev.url(f"/{namespace}/{name}/hls/source/index.m3u8"), timeout=5
            ).read().decode()
            if "#EXTINF" in text:
                return True
        except Exception:  # noqa: BLE001 - not live yet
            pass
        time.sleep(0.3)
    return False


def stop_dev(server, data):
    server.proc.send_signal(signal.SIGINT)
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def dev():
    server, data = start_dev(
        "--rtmp-handshake-timeout-seconds", str(HANDSHAKE_TIMEOUT),
        "--rtmp-publish-timeout-seconds", str(PUBLISH_TIMEOUT),
        "--rtmp-idle-timeout-seconds", str(IDLE_TIMEOUT),
        "--rtmp-max-connections-per-ip", str(RTMP_MAX_CONNECTIONS_PER_IP),
    )
    yield server
    stop_dev(server, data)


class PlaylistWatch:
    """Follows a live media playlist: the highest segment sequence seen, when it last grew, and
    any sign that the session broke (a sequence that went back, a discontinuity, ENDLIST)."""

    def __init__(self, url):
        self.url = url
        self.highest = -1
        self.grew_at = []
        self.broken = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.is_set():
            try:
                text = urllib.request.urlopen(self.url, timeout=5).read().decode()
            except Exception:  # noqa: BLE001 - not live yet, or a transient error
                time.sleep(0.25)
                continue
            m = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
            first = int(m.group(1)) if m else 0
            count = text.count("#EXTINF")
            if "#EXT-X-ENDLIST" in text:
                self.broken.append("ENDLIST: the honest session ended")
            if "#EXT-X-DISCONTINUITY" in text:
                self.broken.append("DISCONTINUITY in the honest session")
            if count:
                last = first + count - 1
                if last < self.highest:
                    self.broken.append(f"sequence went back from {self.highest} to {last}")
                if last > self.highest:
                    self.highest = last
                    self.grew_at.append(time.monotonic())
            time.sleep(0.25)

    def wait_for_segments(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.highest + 1 < n:
            time.sleep(0.2)
        assert self.highest + 1 >= n, f"the honest room made {self.highest + 1} of {n} segments"

    def longest_stall_since(self, since):
        """Longest time without a new segment between `since` and now."""
        marks = [since] + [t for t in self.grew_at if t >= since] + [time.monotonic()]
        return max(b - a for a, b in zip(marks, marks[1:]))


@pytest.fixture(scope="module")
def honest(dev):
    """ffmpeg publishing to shows/lobby for the whole module, and a watch on its playlist."""
    publisher = ffmpeg_publish(dev, "shows/lobby")
    watch = PlaylistWatch(dev.url("/shows/lobby/hls/source/index.m3u8")).start()
    watch.wait_for_segments(3)
    yield watch
    watch.stop()
    publisher.terminate()
    publisher.wait(timeout=10)
