//! What a viewer (or anyone on the internet) puts in an HLS origin URL: the query string of a
//! media playlist request (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and the file name under a
//! rendition (`<token>-<seq>.m4s` and the others of `room::names`). Both must refuse, never
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_media::{origin::low_latency::delivery, room::names::MediaName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = delivery(Some(text)) {
        // What was accepted names the directives literally.
        assert!(parsed.block.is_none() || text.contains("_HLS_msn="));
    }
    if let Some(name) = MediaName::parse(text) {
        // One file, one name: whatever is accepted is exactly how the playlists write it.
        assert_eq!(name.to_string(), text);
        let _ = name.file.content_type();
    }
});
