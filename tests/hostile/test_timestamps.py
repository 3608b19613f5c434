"""A publisher's timestamps are the peer's: against the real `roomcast dev`, real H.264 and AAC
frames (cut by ffmpeg into an FLV file) are sent over a hand-written RTMP client with crafted
timestamps. Frozen timestamps on keyframes (which no keyframe watch can see) must get the
publisher cut before the process grows; a jump of a million seconds, or back to zero, must not
reach the playlist's TARGETDURATION; the 32-bit wrap of a long session is no jump at all. An
honest publisher in another room of the same process keeps going throughout."""

import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

import rtmp_client as rtmp
from conftest import (
    PlaylistWatch, ffmpeg_publish, require, room_yaml, rooms_yaml, start_dev, stop_dev,
)

# 1 s segments and a 1 s keyframe timeout: the keyframe limit is four segments, 4 s. Segments
# can then never be longer than 1 + 4 s, nor TARGETDURATION larger.
KEYFRAME_LIMIT = 4
MAX_TARGET_DURATION = 1 + KEYFRAME_LIMIT
# The jumps are sent into three rooms: the passthrough's MPEG-TS muxer, the same with an encoded
# rung (GStreamer reads the rebased timestamps and must cut where the source cuts), and the
# CMAF part muxer of a low-latency room.
LADDER = """\
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: jumpy-ladder, namespace: shows}
spec:
  transcode:
    segmentSeconds: 1
    renditions:
      - {name: source}
      - {name: 144p, height: 144, videoKbps: 200, audioKbps: 64}
"""
JUMPY = {
    "jumpy": ["source"],
    "jumpy-ladder": ["source", "144p"],
    "jumpy-low": ["source"],
}
ROOMS = rooms_yaml(
    *(room_yaml(name) for name in ("steady", "frozen", "jumpy", "wrap")),
    LADDER,
    room_yaml("jumpy-low", "  playback: {latency: low}\n"),
)


@pytest.fixture(scope="module")
def clip():
    """Four seconds of 15 fps video, every frame a keyframe, and AAC audio, as FLV tags."""
    require(shutil.which("ffmpeg") is not None, "ffmpeg", "it encodes the frames sent")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/clip.flv"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
             "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "1", "-bf", "0",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", path],
            check=True,
        )
        tags = rtmp.flv_tags(path)
    headers = [t for t in tags if t[2][1] == 0]
    frames = [t for t in tags if t[2][1] != 0]
    assert len(headers) == 2 and frames, "no AVC and AAC sequence headers in the clip"
    return headers, frames


@pytest.fixture(scope="module")
def dev():
    server, data = start_dev("--rtmp-keyframe-timeout-seconds", "1", rooms_yaml=ROOMS)
    steady = ffmpeg_publish(server, "shows/steady", size="160x120")
    watch = PlaylistWatch(server.url("/shows/steady/hls/source/index.m3u8")).start()
    watch.wait_for_segments(3)
    server.steady = watch
    yield server
    watch.stop()
    steady.terminate()
    steady.wait(timeout=10)
    stop_dev(server, data)


class Publisher:
    """One crafted publish: the clip's frames in real time, each stamped by `stamp(kind, t)`
    where `t` is the honest media time in ms."""

    def __init__(self, dev, room):
        self.sock = rtmp.connected(dev.rtmp_port)
        self.sock.sendall(rtmp.connect_command())
        rtmp.read_until(self.sock, b"_result")
        self.sock.sendall(rtmp.publish_commands(dev.keys[f"shows/{room}"]))
        rtmp.read_until(self.sock, b"NetStream.Publish.Start")
        self.sock.sendall(rtmp.set_chunk_size(1 << 16))
        self.cut_at = None
        self.sock.settimeout(None)
        # The worker's acknowledgements must be read, or its writes would stall it.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.cut_at = self.cut_at or time.monotonic()

    def send(self, clip, seconds, stamp):
        """Send for `seconds` of media time (less if the worker cuts the connection first);
        the seconds it took until the cut, or None."""
        headers, frames = clip
        started = time.monotonic()
        try:
            for kind, _, body in headers:
                self.sock.sendall(rtmp.media(kind, body, stamp(kind, 0), 1 << 16))
            loop_ms = frames[-1][1] + 67
            t, loop = 0, 0
            while t < seconds * 1000 and self.cut_at is None:
                for kind, ts, body in frames:
                    t = loop * loop_ms + ts
                    if t >= seconds * 1000 or self.cut_at is not None:
                        break
                    ahead = started + t / 1000 - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    self.sock.sendall(rtmp.media(kind, body, stamp(kind, t), 1 << 16))
                loop += 1
        except OSError:
            self.cut_at = self.cut_at or time.monotonic()
        if self.cut_at is None:
            time.sleep(1)  # the cut lands just after the last frame sent
        return None if self.cut_at is None else self.cut_at - started

    def close(self):
        self.sock.close()


def playlist(dev, room, rendition="source"):
    return urllib.request.urlopen(
        dev.url(f"/shows/{room}/hls/{rendition}/index.m3u8"), timeout=5).read().decode()


def durations(text):
    return [float(d) for d in re.findall(r"#EXTINF:([0-9.]+),", text)]


def target_duration(text):
    return int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))


def jumps(dev, room):
    text = urllib.request.urlopen(dev.url("/metrics"), timeout=5).read().decode()
    m = re.search(
        r'roomcast_media_ingest_timestamp_jumps_total\{room="shows/%s"\} (\d+)' % room, text)
    return int(m.group(1)) if m else 0


def test_keyframes_with_frozen_timestamps_are_cut_before_the_process_grows(dev, clip):
    before = dev.refused("timestamps_stalled")
    rss_before = dev.rss_mib()
    publisher = Publisher(dev, "frozen")
    try:
        # Every frame a keyframe, all video at the same instant; audio keeps honest time, so
        # the stream looks alive to everything but the video clock.
        took = publisher.send(clip, 30, lambda kind, t: 5_000 if kind == 9 else 5_000 + t)
    finally:
        publisher.close()
    assert took is not None, "a publisher with frozen video timestamps was not cut in 30 s"
    assert KEYFRAME_LIMIT - 1 <= took <= KEYFRAME_LIMIT + 4, f"cut after {took:.1f} s"
    assert dev.refused_beyond("timestamps_stalled", before) >= 1
    assert dev.alive()
    grew = dev.rss_mib() - rss_before
    assert grew < 64, f"the process grew by {grew:.0f} MiB"
    # No segment could close, so the room never went live: players are told so (503), not
    # handed a playlist whose one segment holds the whole publish.
    with pytest.raises(urllib.error.HTTPError) as refused:
        playlist(dev, "frozen")
    assert refused.value.code == 503


@pytest.mark.parametrize("room", JUMPY)
def test_a_jump_of_a_million_seconds_and_back_to_zero_leaves_target_duration_alone(
    dev, clip, room,
):
    def stamp(kind, t):
        if t < 3_000:
            return 60_000 + t
        if t < 6_000:
            return 60_000 + t + 1_000_000_000  # a million seconds on: extended timestamps
        return t - 6_000  # and back to zero

    publisher = Publisher(dev, room)
    try:
        took = publisher.send(clip, 9, stamp)
        assert took is None, f"a publisher whose clock jumped was cut after {took:.1f} s"
        time.sleep(1)  # the encoded rung closes its segment a moment after the source
        texts = {r: playlist(dev, room, r) for r in JUMPY[room]}
    finally:
        publisher.close()
    for text in texts.values():
        assert target_duration(text) <= MAX_TARGET_DURATION, text
        assert all(d <= MAX_TARGET_DURATION for d in durations(text)), text
        # Rebased to carry on one frame later: the playlist holds the honest 9 s (the segment
        # still open when the publish ends is not in it yet).
        assert 6 <= sum(durations(text)) <= 9.5, text
    # Every rendition cut at the same instants.
    cuts = [durations(text)[:6] for text in texts.values()]
    assert all(c == cuts[0] for c in cuts), texts
    # Each jump counted once per track (video and audio).
    assert jumps(dev, room) >= 2


def test_the_32_bit_wrap_of_a_long_session_is_no_jump(dev, clip):
    publisher = Publisher(dev, "wrap")
    try:
        # 49.7 days in: the timestamps pass 2^32 ms two seconds from now.
        took = publisher.send(clip, 8, lambda kind, t: 2**32 - 2_000 + t)
        assert took is None, f"a publisher whose clock wrapped was cut after {took:.1f} s"
        text = playlist(dev, "wrap")
    finally:
        publisher.close()
    assert jumps(dev, "wrap") == 0
    assert target_duration(text) <= 2, text
    # Segments kept closing after the wrap: 8 s of 1 s segments (the last one still open).
    assert len(durations(text)) >= 6, text
    assert all(0.5 <= d <= 1.5 for d in durations(text)), text


def test_the_honest_room_never_stalled(dev):
    """Last: the attacks shared the process with an honest room, which kept going."""
    watch = dev.steady
    assert not watch.broken, watch.broken
    assert watch.longest_stall_since(watch.grew_at[0]) < 5, "the honest room stalled"
    assert dev.alive()

