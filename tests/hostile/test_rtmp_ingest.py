"""Adversarial suite against the real binary: each case attacks the RTMP port of a running
`roomcast dev` while an honest ffmpeg publisher streams to another room. After each case the
process is alive, its RSS grew by less than RSS_BOUND_MIB, and the honest room kept making
segments without a stall, a discontinuity or an end (its media sequence has no gap)."""

import os
import socket
import struct
import threading
import time

import pytest

import rtmp_client as rtmp
from conftest import ffmpeg_publish, wait_live
from conftest import HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, PUBLISH_TIMEOUT, RTMP_MAX_CONNECTIONS_PER_IP

# What one attack may add to the worker's resident memory (the honest room's DVR window also
# grows a little during a case).
RSS_BOUND_MIB = 64
# Longest the honest room may go without a new 1 s segment during an attack.
MAX_STALL_SECONDS = 4.0


@pytest.fixture
def guard(dev, honest):
    """Measure around one case: the process lives, memory stays bounded, the honest room flows."""
    rss_before = dev.rss_mib()
    started = time.monotonic()
    broken_before = len(honest.broken)
    yield
    # Give the honest room time to show one more segment after the attack.
    time.sleep(1.5)
    assert dev.alive(), "the worker died"
    grown = dev.rss_mib() - rss_before
    assert grown < RSS_BOUND_MIB, f"RSS grew by {grown:.0f} MiB"
    assert honest.broken[broken_before:] == [], honest.broken[broken_before:]
    stall = honest.longest_stall_since(started)
    assert stall < MAX_STALL_SECONDS, f"the honest room stalled for {stall:.1f} s"


def test_deeply_nested_amf_before_connect_is_refused(dev, guard):
    # ~240 KB of nested objects: this aborted the whole process with a stack overflow.
    nested = b"\x02\x00\x07connect" + b"\x00" + struct.pack(">d", 1.0)
    nested += b"\x03\x00\x01a" * 60_000
    sock = rtmp.connected(dev.rtmp_port)
    sock.sendall(rtmp.set_chunk_size(1 << 20) + rtmp.chunks(3, 20, nested, chunk_size=1 << 20))
    assert rtmp.closed_by_peer(sock), "a malformed command should end the connection"


def test_interleaved_chunk_streams_do_not_wrap(dev, guard):
    # csid 3 holds 1,280 bytes of a 1 MiB message; csid 4 declares 100 bytes.
    sock = rtmp.connected(dev.rtmp_port)
    data = rtmp.header0(3, 1 << 20, 9) + b"\x00" * 128
    for _ in range(9):
        data += b"\xC3" + b"\x00" * 128
    data += rtmp.header0(4, 100, 8) + b"\x00" * 100
    sock.sendall(data)
    time.sleep(1)
    sock.close()


def test_declared_16_mib_messages_that_never_arrive_cost_nothing(dev, guard):
    socks = []
    for _ in range(50):
        sock = rtmp.connected(dev.rtmp_port)
        sock.sendall(rtmp.header0(3, 0xFFFFFF, 9) + b"\x00" * 128)
        socks.append(sock)
    time.sleep(2)
    for sock in socks:
        sock.close()


def test_slow_sockets_do_not_starve_the_honest_room(dev, guard):
    socks = [rtmp.open_socket(dev.rtmp_port) for _ in range(300)]
    for _ in range(5):
        for sock in socks:
            try:
                sock.send(b"\x03")
            except OSError:
                pass
        time.sleep(1)
    for sock in socks:
        sock.close()


def test_random_bytes_after_a_valid_handshake_end_the_connection(dev, guard):
    sock = rtmp.connected(dev.rtmp_port)
    try:
        sock.sendall(os.urandom(64 * 1024))
    except OSError:
        pass  # the server may close while we still send
    assert rtmp.closed_by_peer(sock)


def test_a_chunk_size_of_2_pow_31_minus_1_is_handled(dev, guard):
    sock = rtmp.connected(dev.rtmp_port)
    sock.sendall(rtmp.set_chunk_size(0x7FFFFFFF) + rtmp.connect_command())
    # The server answers connect (window ack, peer bandwidth, _result) as for any client.
    sock.settimeout(5)
    assert sock.recv(4096), "no answer to connect after a huge chunk size"
    sock.sendall(rtmp.header0(5, 0xFFFFFF, 9) + b"\x00" * 1024)
    time.sleep(1)
    sock.close()


def test_a_thousand_connections_from_one_address(dev, honest, guard):
    socks = []
    for _ in range(1000):
        try:
            socks.append(rtmp.open_socket(dev.rtmp_port, timeout=5))
        except OSError:
            break  # refused or reset: a connection limit at work is fine
    # While they are held, an honest client (another address) still gets through the handshake
    # quickly: the per-address cap refused most of the thousand at accept.
    started = time.monotonic()
    fresh = rtmp.connected(dev.rtmp_port, source="127.0.0.3")
    waited = time.monotonic() - started
    fresh.close()
    assert waited < 2.0, f"an honest handshake waited {waited:.1f} s"
    time.sleep(2)
    for sock in socks:
        sock.close()


def test_publish_without_connect_is_refused(dev, guard):
    sock = rtmp.connected(dev.rtmp_port)
    sock.sendall(rtmp.publish_commands(dev.keys["shows/target"]))
    time.sleep(1)
    status = dev.url("/shows/target/status")
    import urllib.request

    body = urllib.request.urlopen(status, timeout=5).read().decode()
    assert '"live":false' in body.replace(" ", ""), body
    sock.close()


def test_connections_over_the_per_address_cap_are_refused_and_counted(dev, guard):
    before = dev.refused("connections_per_ip")
    socks, closed = [], 0
    for _ in range(RTMP_MAX_CONNECTIONS_PER_IP + 24):
        socks.append(rtmp.open_socket(dev.rtmp_port, source="127.0.0.4"))
    for sock in socks[RTMP_MAX_CONNECTIONS_PER_IP:]:
        closed += rtmp.closed_by_peer(sock, within=2.0)
    assert closed == 24, f"{closed} of 24 connections over the cap were closed"
    # The ones under the cap still get a handshake.
    rtmp.handshake(socks[0])
    assert dev.refused_beyond("connections_per_ip", before + 23) >= 1
    for sock in socks:
        sock.close()


def test_a_socket_that_completes_the_handshake_and_sends_nothing_is_closed(dev, guard):
    before = dev.refused("publish_timeout")
    started = time.monotonic()
    sock = rtmp.connected(dev.rtmp_port)
    assert rtmp.closed_by_peer(sock, within=PUBLISH_TIMEOUT + 5)
    waited = time.monotonic() - started
    assert waited >= PUBLISH_TIMEOUT - 1, f"closed after {waited:.1f} s, before the deadline"
    assert dev.refused_beyond("publish_timeout", before) > 0


def test_a_socket_that_never_finishes_the_handshake_is_closed(dev, guard):
    before = dev.refused("handshake_timeout")
    sock = rtmp.open_socket(dev.rtmp_port)
    sock.sendall(b"\x03" + b"\x00" * 700)  # half a C0+C1
    assert rtmp.closed_by_peer(sock, within=HANDSHAKE_TIMEOUT + 5)
    assert dev.refused_beyond("handshake_timeout", before) > 0


def test_a_publisher_that_sends_only_keepalive_bytes_is_cut_by_the_idle_deadline(dev, guard):
    before = dev.refused("idle_timeout")
    sock = rtmp.connected(dev.rtmp_port)
    # Like real encoders, wait for connect's answer before publishing.
    sock.sendall(rtmp.connect_command())
    rtmp.read_until(sock, b"_result")
    sock.sendall(rtmp.publish_commands(dev.keys["shows/target"]))
    rtmp.read_until(sock, b"NetStream.Publish.Start")
    # Bytes keep coming, media never does: acknowledgements every half second.
    deadline = time.monotonic() + IDLE_TIMEOUT + 6
    cut = False
    n = 0
    sock.settimeout(0.5)
    while time.monotonic() < deadline and not cut:
        try:
            sock.sendall(rtmp.acknowledgement(n))
            n += 4096
            if sock.recv(65536) == b"":
                cut = True
        except socket.timeout:
            pass
        except OSError:
            cut = True
    assert cut, "a publisher sending no media was not cut"
    assert dev.refused_beyond("idle_timeout", before) > 0


def test_the_worker_still_takes_a_new_publisher_after_the_attacks(dev, honest):
    """Last: every attack is over; a second room can still go live."""
    publisher = ffmpeg_publish(dev, "shows/target", seconds=8, size="160x120", audio=False)
    try:
        assert wait_live(dev, "shows/target"), "the second room never went live"
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
