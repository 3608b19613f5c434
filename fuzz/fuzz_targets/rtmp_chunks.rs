//! The RTMP chunk layer: interleaved chunk streams, header formats, extended timestamps, chunk
//! size changes. The first input byte picks the peer's chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::chunk_io::ChunkDeserializer;

fuzz_target!(|data: &[u8]| {
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let mut deserializer = ChunkDeserializer::new();
    deserializer.set_max_message_length(1 << 20);
    let _ = deserializer.set_max_chunk_size(usize::from(size) * 64 + 1);
    // Feed in two halves: partial chunks must be kept across calls.
    let (a, b) = bytes.split_at(bytes.len() / 2);
    for part in [a, b] {
        let mut input = part;
        while let Ok(Some(_)) = deserializer.get_next_message(input) {
            input = &[];
        }
    }
});
