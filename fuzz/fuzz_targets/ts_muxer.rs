//! The MPEG-TS muxer's input: configurations that parsed, then access units with arbitrary
//! timestamps, composition offsets and payloads (AVCC length prefixes that lie, empty frames).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_media::mux::codec::{AacConfig, AvcConfig};
use roomcast_media::mux::ts::TsMuxer;

/// A minimal valid AVC configuration record (baseline, 320x240 SPS) and AAC-LC stereo config.
const AVC_RECORD: &[u8] = &[
    0x01, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0x00, 0x0f, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07,
    0xe8, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x01, 0x00, 0x04, 0x68, 0xce,
    0x3c, 0x80,
];
const AAC_CONFIG: &[u8] = &[0x12, 0x10];

fuzz_target!(|data: &[u8]| {
    let (Ok(avc), Ok(aac)) = (AvcConfig::parse(AVC_RECORD), AacConfig::parse(AAC_CONFIG)) else {
        return;
    };
    let mut mux = TsMuxer::new(avc, Some(aac));
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    let mut rest = data;
    // Each unit: 1 byte flags (bit 0 audio, bit 1 keyframe, bits 2..8 length x16), 4 bytes
    // signed timestamp, 2 bytes signed composition offset, payload.
    while rest.len() >= 7 {
        let flags = rest[0];
        let ts = i64::from(i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]));
        let cts = i32::from(i16::from_be_bytes([rest[5], rest[6]]));
        let len = usize::from(flags >> 2) * 16;
        let end = (7 + len).min(rest.len());
        let payload = &rest[7..end];
        rest = &rest[end..];
        let result = if flags & 1 == 1 {
            mux.write_audio(&mut out, ts, payload)
        } else {
            mux.write_video(&mut out, ts, cts, flags & 2 == 2, payload)
        };
        if result.is_err() {
            return;
        }
        out.clear();
    }
});
