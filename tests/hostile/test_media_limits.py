"""Publishers that are accepted and then misbehave are cut with a reason, against the real
binary: a source that stops sending keyframes (its open segments could only grow), and one
whose bitrate stays above the room's `maxBitrateKbps`. A well-behaved publisher in another
room keeps going throughout."""

import time

import pytest

from conftest import (
    ffmpeg_publish, room_yaml, rooms_yaml, start_dev, stop_dev, wait_live,
)

# The room's segments are 1 s, so the keyframe limit is max(1 s, 4 segments) = 4 s.
KEYFRAME_TIMEOUT = 1
ROOMS = rooms_yaml(
    room_yaml("steady"),
    room_yaml("nokeys"),
    room_yaml("capped", "  ingest: {maxBitrateKbps: 100}\n"),
)


@pytest.fixture(scope="module")
def dev():
    server, data = start_dev(
        "--rtmp-keyframe-timeout-seconds", str(KEYFRAME_TIMEOUT), rooms_yaml=ROOMS)
    steady = ffmpeg_publish(server, "shows/steady", size="160x120")
    assert wait_live(server, "shows/steady"), "the steady room never went live"
    yield server
    steady.terminate()
    steady.wait(timeout=10)
    stop_dev(server, data)


def cut_within(publisher, seconds):
    """Seconds until the worker closed the publisher's connection (ffmpeg exits), or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if publisher.poll() is not None:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def test_a_source_that_stops_sending_keyframes_is_cut(dev):
    before = dev.refused("no_keyframe")
    # One keyframe at the start, then never again (no GOP, no scene cuts).
    publisher = ffmpeg_publish(
        dev, "shows/nokeys", seconds=60, size="160x120", audio=False,
        video_args=("-x264-params", "keyint=100000:min-keyint=100000:scenecut=0"))
    try:
        took = cut_within(publisher, 20)
        assert took is not None, "a source without keyframes was not cut"
        assert took >= 4 - 1, f"cut after {took:.1f} s, before the 4 s limit"
    finally:
        publisher.kill()
        publisher.wait(timeout=10)
    assert dev.refused_beyond("no_keyframe", before) >= 1
    assert dev.alive()


def test_the_same_encoder_with_keyframes_is_not_cut(dev):
    publisher = ffmpeg_publish(dev, "shows/nokeys", seconds=60, size="160x120", audio=False)
    try:
        assert wait_live(dev, "shows/nokeys")
        assert cut_within(publisher, 8) is None, "an honest source was cut"
    finally:
        publisher.kill()
        publisher.wait(timeout=10)


def test_a_publisher_far_above_max_bitrate_is_cut_after_the_grace(dev):
    before = dev.refused("bitrate_exceeded")
    # About 2 Mbit/s into a room capped at 100 kbit/s: 5 s warm-up + 10 s overrun grace.
    publisher = ffmpeg_publish(
        dev, "shows/capped", seconds=60, size="640x360", audio=False,
        video_args=("-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M"))
    try:
        took = cut_within(publisher, 30)
        assert took is not None, "a publisher 20x over maxBitrateKbps was not cut"
        assert took >= 14, f"cut after {took:.1f} s, before warm-up plus grace"
    finally:
        publisher.kill()
        publisher.wait(timeout=10)
    assert dev.refused_beyond("bitrate_exceeded", before) >= 1
    assert wait_live(dev, "shows/steady", within=3), "the steady room stopped"
