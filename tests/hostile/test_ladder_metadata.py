"""A publisher's onMetaData is its word, not the worker's truth: a real H.264/AAC stream (cut by
ffmpeg into FLV tags) is published by hand with metadata an attacker would pick (width 0,
height 99999, videodatarate NaN, framerate 1e300) into a room whose ladder has a 720p rung.
The worker neither crashes nor upscales: it reads the picture's size from the stream's SPS,
serves the source and the 240p rung only, and the master says 640x360."""

import json
import pathlib
import shutil
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import rtmp_client as rtmp
from conftest import require, start_dev, stop_dev

ROOM = """\
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: liar, namespace: shows}
spec:
  ingest: {reconnectGraceSeconds: 0}
  transcode:
    segmentSeconds: 1
    renditions:
      - {name: source}
      - {name: 720p, height: 720, videoKbps: 2800, audioKbps: 64}
      - {name: 240p, height: 240, videoKbps: 300, audioKbps: 64}
"""

HOSTILE_METADATA = [
    {"width": 0, "height": 99999, "videodatarate": float("nan"), "framerate": 1e300},
    {"width": -1, "height": -1, "videodatarate": -5000, "framerate": float("inf")},
    {"width": 1e300, "height": 1e300, "videodatarate": 1e300, "framerate": -30},
]
CHUNK_SIZE = 65536


def flv_tags(path):
    """(type, timestamp ms, body) of every audio and video tag of an FLV file."""
    data = pathlib.Path(path).read_bytes()
    at, tags = 9 + 4, []
    while at + 11 <= len(data):
        kind = data[at]
        size = int.from_bytes(data[at + 1 : at + 4], "big")
        ts = int.from_bytes(data[at + 4 : at + 7], "big") | (data[at + 7] << 24)
        body = data[at + 11 : at + 11 + size]
        if kind in (8, 9):
            tags.append((kind, ts, body))
        at += 11 + size + 4
    return tags


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def master_variants(text):
    """(uri, attributes line) of each variant of a master playlist."""
    lines = text.splitlines()
    return [(lines[i + 1], line) for i, line in enumerate(lines)
            if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines)]


def publish(port, key, metadata, tags):
    """Connect, publish `key`, send `metadata` as onMetaData, then every tag; the socket."""
    sock = rtmp.connected(port)
    sock.sendall(rtmp.set_chunk_size(CHUNK_SIZE))
    sock.sendall(rtmp.connect_command())
    rtmp.read_until(sock, b"_result")
    sock.sendall(rtmp.publish_commands(key))
    rtmp.read_until(sock, b"NetStream.Publish.Start")
    body = rtmp.command("@setDataFrame", "onMetaData",
                        {**metadata, "videocodecid": 7, "audiocodecid": 10})
    sock.sendall(rtmp.chunks(4, 18, body, stream_id=1, chunk_size=CHUNK_SIZE))
    for kind, ts, body in tags:
        csid = 6 if kind == 9 else 5
        sock.sendall(rtmp.chunks(csid, kind, body, stream_id=1, chunk_size=CHUNK_SIZE,
                                 timestamp=ts))
    return sock


def test_lying_metadata_neither_crashes_nor_upscales():
    require(shutil.which("ffmpeg") is not None, "ffmpeg", "the stream is cut by ffmpeg")
    work = pathlib.Path(tempfile.mkdtemp(prefix="roomcast-liar-"))
    source = work / "source.flv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15",
         "-b:v", "600k", "-c:a", "aac", "-f", "flv", str(source)],
        check=True, timeout=60)
    tags = flv_tags(source)
    assert any(kind == 9 for kind, _, _ in tags)
    server, data = start_dev(rooms_yaml=ROOM)
    try:
        key = server.keys["shows/liar"]
        for metadata in HOSTILE_METADATA:
            sock = publish(server.rtmp_port, key, metadata, tags)
            deadline = time.monotonic() + 30
            master = ""
            while time.monotonic() < deadline:
                status, master = get(server.url("/shows/liar/hls/index.m3u8"))
                if status == 200 and "240p/index.m3u8" in master:
                    break
                time.sleep(0.25)
            sock.close()
            assert server.alive(), f"the worker died on {metadata}"
            variants = master_variants(master)
            assert [uri for uri, _ in variants] == ["source/index.m3u8", "240p/index.m3u8"], (
                metadata, master)
            assert "RESOLUTION=640x360" in variants[0][1], master
            assert "RESOLUTION=426x240" in variants[1][1], master
            _, status = get(server.url("/shows/liar/status"))
            assert json.loads(status)["renditions"] == ["source", "240p"], status
            # No grace period: the session ends, and the next lie starts a fresh one.
            deadline = time.monotonic() + 30
            while json.loads(get(server.url("/shows/liar/status"))[1])["phase"] != "Idle":
                assert time.monotonic() < deadline, "the session did not end"
                time.sleep(0.25)
    finally:
        stop_dev(server, data)
        shutil.rmtree(work, ignore_errors=True)
