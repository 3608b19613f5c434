"""A minimal RTMP client for hostile-input tests: the handshake, AMF0 values and chunks,
written by hand so a test can send exactly the bytes an attacker would."""

import os
import socket
import struct

CHUNK_SIZE = 128  # the protocol's initial chunk size


def amf0(value):
    """Encode one AMF0 value (numbers, booleans, strings, None, dicts)."""
    if value is None:
        return b"\x05"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, (int, float)):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        data = value.encode()
        return b"\x02" + struct.pack(">H", len(data)) + data
    if isinstance(value, dict):
        out = b"\x03"
        for key, item in value.items():
            k = key.encode()
            out += struct.pack(">H", len(k)) + k + amf0(item)
        return out + b"\x00\x00\x09"
    raise TypeError(type(value))


def command(*values):
    return b"".join(amf0(v) for v in values)


def header0(csid, length, type_id, stream_id=0, timestamp=0):
    """A type 0 chunk header (csid 2..63)."""
    return (
        bytes([csid & 0x3F])
        + struct.pack(">I", timestamp)[1:]
        + struct.pack(">I", length)[1:]
        + bytes([type_id])
        + struct.pack("<I", stream_id)
    )


def chunks(csid, type_id, payload, stream_id=0, chunk_size=CHUNK_SIZE, timestamp=0):
    """A whole message cut into chunks: a type 0 header, then type 3 headers."""
    out = header0(csid, len(payload), type_id, stream_id, timestamp)
    for i in range(0, max(len(payload), 1), chunk_size):
        if i:
            out += bytes([0xC0 | (csid & 0x3F)])
        out += payload[i : i + chunk_size]
    return out


def set_chunk_size(size):
    return chunks(2, 1, struct.pack(">I", size))


def connect_command(app="live"):
    return chunks(
        3,
        20,
        command(
            "connect",
            1,
            {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0", "tcUrl": f"rtmp://127.0.0.1/{app}"},
        ),
    )


def publish_commands(key, app="live"):
    """createStream, then publish `key` on message stream 1."""
    return chunks(3, 20, command("createStream", 2, None)) + chunks(
        8, 20, command("publish", 3, None, key, app), stream_id=1
    )


# Attacks come from their own loopback address (all of 127/8 is local on Linux), so the
# per-address connection cap meets them, not the honest publisher on 127.0.0.1.
ATTACKER = "127.0.0.2"


def open_socket(port, timeout=10.0, source=ATTACKER):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += part
    return data


def handshake(sock):
    """The original (simple) RTMP handshake: C0+C1, read S0+S1+S2, send C2."""
    c1 = b"\x00" * 8 + os.urandom(1528)
    sock.sendall(b"\x03" + c1)
    s0_s1_s2 = recv_exactly(sock, 1 + 1536 + 1536)
    sock.sendall(s0_s1_s2[1 : 1 + 1536])


def connected(port, source=ATTACKER):
    sock = open_socket(port, source=source)
    handshake(sock)
    return sock


def read_until(sock, marker, within=5.0):
    """Read until `marker` appears in what the server sent; the bytes read."""
    sock.settimeout(within)
    data = b""
    while marker not in data:
        part = sock.recv(65536)
        if not part:
            raise ConnectionError(f"closed before {marker!r}")
        data += part
    return data


def acknowledgement(n):
    """An Acknowledgement message (type 3): a byte count, no media."""
    return chunks(2, 3, struct.pack(">I", n & 0xFFFFFFFF))


def closed_by_peer(sock, within=5.0):
    """True when the server closes (or resets) the connection within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return True
    except socket.timeout:
        return False


# The 24-bit timestamp field's escape: larger timestamps follow the header in 4 bytes.
EXTENDED = 0xFFFFFF


def media(type_id, payload, timestamp, chunk_size=CHUNK_SIZE):
    """An audio (8) or video (9) message on message stream 1 at `timestamp` ms (any 32-bit
    value: from 0xFFFFFF on it goes in the extended timestamp, repeated in every chunk as the
    specification has it)."""
    csid = 4 if type_id == 8 else 6
    timestamp &= 0xFFFFFFFF
    extended = timestamp >= EXTENDED
    out = header0(csid, len(payload), type_id, 1, EXTENDED if extended else timestamp)
    if extended:
        out += struct.pack(">I", timestamp)
    for i in range(0, max(len(payload), 1), chunk_size):
        if i:
            out += bytes([0xC0 | csid])
            if extended:
                out += struct.pack(">I", timestamp)
        out += payload[i : i + chunk_size]
    return out


def flv_tags(path):
    """The audio and video tags of an FLV file: (type id, timestamp ms, body)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:3] == b"FLV", "not an FLV file"
    at = struct.unpack(">I", data[5:9])[0] + 4
    tags = []
    while at + 11 <= len(data):
        kind = data[at] & 0x1F
        size = int.from_bytes(data[at + 1 : at + 4], "big")
        ts = int.from_bytes(data[at + 4 : at + 7], "big") | data[at + 7] << 24
        body = data[at + 11 : at + 11 + size]
        if kind in (8, 9) and len(body) == size:
            tags.append((kind, ts, body))
        at += 11 + size + 4
    return tags
