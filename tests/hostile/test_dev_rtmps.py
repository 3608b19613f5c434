"""`roomcast dev` speaks RTMPS: the real binary's in-process ingest gateway serves the
self-signed certificate whose fingerprint the banner prints, relays ffmpeg's rtmps publish to
the room, and refuses a wrong key over TLS as over plain RTMP."""

import hashlib
import socket
import ssl

from conftest import ffmpeg_publish, start_dev, stop_dev, wait_live


def served_fingerprint(port):
    """SHA-256 of the certificate the RTMPS port presents, as the banner spells it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: compared by fingerprint instead
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_dev_relays_an_rtmps_publish_under_the_certificate_its_banner_names():
    dev, data = start_dev()
    try:
        assert dev.rtmps_port and dev.fingerprint, "the banner names the RTMPS server and certificate"
        assert served_fingerprint(dev.rtmps_port) == dev.fingerprint
        publisher = ffmpeg_publish(dev, "shows/lobby", seconds=8, scheme="rtmps")
        try:
            assert wait_live(dev, "shows/lobby"), "no segment from the rtmps publish"
        finally:
            publisher.kill()
        # A wrong key over RTMPS: ffmpeg is refused and exits with an error.
        dev.keys["shows/target"] = "not-a-key"
        wrong = ffmpeg_publish(dev, "shows/target", seconds=3, scheme="rtmps")
        assert wrong.wait(timeout=30) != 0
    finally:
        stop_dev(dev, data)

