"""Writes the hand-made seeds of the roomcast fuzz targets (python3 fuzz/make_seeds.py):
well-formed inputs each target's fuzzer starts from, so it explores past the first parser
instead of rediscovering the format. Deterministic; the fuzzers' own finds are added with
`cargo fuzz cmin`."""

import json
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "hostile"))
import rtmp_client as rtmp  # noqa: E402

AVC_RECORD = bytes([
    0x01, 0x42, 0xC0, 0x0D, 0xFF, 0xE1, 0x00, 0x0F, 0x67, 0x42, 0xC0, 0x0D, 0xDA, 0x05, 0x07,
    0xE8, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0F, 0x01, 0x00, 0x04, 0x68, 0xCE,
    0x3C, 0x80,
])
AAC_CONFIG = bytes([0x12, 0x10])
# One IDR slice NAL (AVCC length-prefixed) and one raw AAC frame: not decodable pictures, but
# the shapes the muxers parse.
IDR = struct.pack(">I", 6) + bytes([0x65, 0x88, 0x84, 0x00, 0x33, 0xFF])
AAC_FRAME = bytes([0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C])


def video_tag(keyframe, avc_type, cts, payload):
    return bytes([(0x10 if keyframe else 0x20) | 7, avc_type]) + struct.pack(">i", cts)[1:] + payload


def audio_tag(aac_type, payload):
    return bytes([0xAF, aac_type]) + payload


def write(target, name, data):
    (HERE / "corpus" / target / name).write_bytes(data)


def main():
    # origin_request: the queries and file names a low-latency player sends.
    (HERE / "corpus" / "origin_request").mkdir(parents=True, exist_ok=True)
    for name, text in [
        ("seed-blocking", "_HLS_msn=12&_HLS_part=3"),
        ("seed-delta", "_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"),
        ("seed-delta-v2", "_HLS_skip=v2"),
        ("seed-part", "69a1b2c3deadbeef-12.3.m4s"),
        ("seed-init", "69a1b2c3deadbeef-init-2.mp4"),
        ("seed-segment", "69a1b2c3deadbeef-12.ts"),
    ]:
        write("origin_request", name, text.encode())
    # rtmp_ingest: everything ffmpeg sends after the handshake, in the order it sends it.
    session = rtmp.connect_command() + rtmp.publish_commands("seed-key")
    meta = rtmp.command("@setDataFrame", "onMetaData", {"width": 320, "height": 240, "framerate": 15})
    session += rtmp.chunks(4, 18, meta, stream_id=1)
    session += rtmp.chunks(6, 9, video_tag(True, 0, 0, AVC_RECORD), stream_id=1)
    session += rtmp.chunks(4, 8, audio_tag(0, AAC_CONFIG), stream_id=1)
    for i in range(6):
        session += rtmp.chunks(6, 9, video_tag(i % 3 == 0, 1, 0, IDR), stream_id=1)
        session += rtmp.chunks(4, 8, audio_tag(1, AAC_FRAME), stream_id=1)
    write("rtmp_ingest", "seed-ffmpeg-like-publish", session)
    write("rtmp_ingest", "seed-connect-only", rtmp.connect_command())

    # flv_tags: (kind|len/8, timestamp, payload) records as the target reads them.
    def record(kind, ts, payload):
        payload = payload + b"\x00" * (-len(payload) % 8)
        return bytes([(len(payload) // 8) << 1 | kind]) + struct.pack(">I", ts) + payload

    tags = record(0, 0, video_tag(True, 0, 0, AVC_RECORD)) + record(1, 0, audio_tag(0, AAC_CONFIG))
    for i in range(4):
        tags += record(0, i * 66, video_tag(i == 0, 1, 0, IDR)) + record(1, i * 23, audio_tag(1, AAC_FRAME))
    write("flv_tags", "seed-av", tags)

    # codec_configs: each parser's well-formed input.
    write("codec_configs", "seed-avc-record", AVC_RECORD)
    write("codec_configs", "seed-sps", AVC_RECORD[8:23])
    write("codec_configs", "seed-aac-lc-stereo", AAC_CONFIG)
    write("codec_configs", "seed-aac-he", bytes([0x2B, 0x92, 0x08, 0x00]))

    # ts_muxer: units (flags: audio bit, key bit, len/16; i32 ts; i16 cts; payload).
    def unit(audio, key, ts, cts, payload):
        payload = payload + b"\x00" * (-len(payload) % 16)
        flags = (len(payload) // 16) << 2 | (2 if key else 0) | (1 if audio else 0)
        return bytes([flags]) + struct.pack(">i", ts) + struct.pack(">h", cts) + payload

    units = b"".join(unit(False, i == 0, i * 66, 33, IDR) + unit(True, False, i * 23, 0, AAC_FRAME) for i in range(4))
    write("ts_muxer", "seed-av-units", units)

    # chat_payload: each request's JSON and a JWT-shaped token.
    for name, payload in {
        "post": {"text": "hello"},
        "delete": {"id": "01J9ZK3Q8YQ3W7Z2XH2E4V5B6C"},
        "ban": {"userId": "u-1", "reason": "spam"},
        "unban": {"userId": "u-1"},
        "slow": {"seconds": 5},
        "auth": {"token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"},
    }.items():
        write("chat_payload", f"seed-{name}", json.dumps(payload).encode())
    write("chat_payload", "seed-token", b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1IiwibmFtZSI6Ik4iLCJleHAiOjE4MDAwMDAwMDB9.AAAA")


if __name__ == "__main__":
    main()
