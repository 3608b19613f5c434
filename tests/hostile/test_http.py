"""The HTTP port of `roomcast dev` (HLS origin, chat, watch page) runs under the same listener
limits as the media worker's origin: a request head sent a byte at a time is cut at the header
deadline, an oversized head is refused, and both are counted by reason."""

import socket
import time

import pytest

from conftest import start_dev, stop_dev

HEADER_TIMEOUT = 2


@pytest.fixture(scope="module")
def dev():
    server, data = start_dev(
        "--http-header-timeout-seconds", str(HEADER_TIMEOUT), needs_ffmpeg=False)
    yield server
    stop_dev(server, data)


def test_a_slowloris_request_head_is_cut_at_the_deadline(dev):
    before = dev.refused("header_timeout", listener="http")
    sock = socket.create_connection(("127.0.0.1", dev.http_port), timeout=10)
    started = time.monotonic()
    closed = False
    try:
        for byte in b"GET /shows/lobby/hls/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            if time.monotonic() - started > HEADER_TIMEOUT + 5:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    waited = time.monotonic() - started
    sock.close()
    assert closed, "the slow request head was never cut"
    assert HEADER_TIMEOUT - 0.5 <= waited <= HEADER_TIMEOUT + 3, f"cut after {waited:.1f} s"
    deadline = time.monotonic() + 3
    while dev.refused("header_timeout", listener="http") <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dev.refused("header_timeout", listener="http") > before


def test_an_oversized_request_head_is_refused(dev):
    sock = socket.create_connection(("127.0.0.1", dev.http_port), timeout=10)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"a" * 60) for i in range(1000)) + b"\r\n"
    try:
        sock.sendall(head)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = sock.recv(100)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer


def test_the_api_still_answers(dev):
    import urllib.request

    body = urllib.request.urlopen(dev.url("/api/rooms"), timeout=5).read().decode()
    assert "lobby" in body
