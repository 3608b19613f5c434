"""The total RTMP connection cap must not lock honest publishers out. Attackers from several
addresses (each under the per-address cap) fill every slot with connections that handshake and
then hold on without publishing; an honest ffmpeg publisher arriving then must still go live at
once, because at the cap the address holding the most connections without a publish gives one
up (whatever their age: churning them does not shelter them)."""


import pytest

import rtmp_client as rtmp
from conftest import ffmpeg_publish, start_dev, stop_dev, wait_live

TOTAL = 24
PER_IP = 8
EVICT_AFTER = 60


@pytest.fixture
def full_house():
    server, data = start_dev(
        "--rtmp-max-connections", str(TOTAL),
        "--rtmp-max-connections-per-ip", str(PER_IP),
        "--rtmp-evict-after-seconds", str(EVICT_AFTER),
        "--rtmp-publish-timeout-seconds", "60",
    )
    squatters = []
    # TOTAL / PER_IP addresses, each at its own cap: every slot is taken.
    for n in range(TOTAL // PER_IP):
        for _ in range(PER_IP):
            squatters.append(rtmp.connected(server.rtmp_port, source=f"127.0.1.{n + 1}"))
    yield server, squatters
    for sock in squatters:
        sock.close()
    stop_dev(server, data)


def test_an_honest_publisher_gets_in_when_squatters_hold_every_slot(full_house):
    dev, squatters = full_house
    # The squatters are younger than the grace (60 s here): youth does not protect them.
    publisher = ffmpeg_publish(dev, "shows/target", seconds=10, size="160x120", audio=False)
    try:
        assert wait_live(dev, "shows/target"), (
            "the honest publisher never went live while squatters held the cap")
    finally:
        publisher.terminate()
        publisher.wait(timeout=10)
    assert dev.refused_beyond("evicted_at_capacity", 0) >= 1
    # The evicted squatter was closed; the others still hold their slots.
    closed = sum(rtmp.closed_by_peer(s, within=0.2) for s in squatters)
    assert 1 <= closed < len(squatters), f"{closed} squatters closed"
    assert dev.alive()
