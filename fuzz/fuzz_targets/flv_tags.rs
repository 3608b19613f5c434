//! The FLV muxer alone: a sequence of media messages (kind, timestamp, payload) as the RTMP
//! session delivers them, including sequence headers, codec changes and timestamp jumps.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use roomcast_media::mux::flv::{FlvMuxer, TagKind};

fuzz_target!(|data: &[u8]| {
    let mut flv = FlvMuxer::new();
    let mut rest = data;
    // Each message: 1 byte kind (bit 0) and length (bits 1..8, x8), 4 bytes timestamp, payload.
    while rest.len() >= 5 {
        let kind = if rest[0] & 1 == 0 { TagKind::Video } else { TagKind::Audio };
        let len = usize::from(rest[0] >> 1) * 8;
        let timestamp = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let end = (5 + len).min(rest.len());
        let payload = Bytes::copy_from_slice(&rest[5..end]);
        rest = &rest[end..];
        if flv.push(kind, timestamp, payload).is_err() {
            return;
        }
    }
});
