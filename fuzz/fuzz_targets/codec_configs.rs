//! The codec configuration parsers a publisher feeds: the AVC decoder configuration record,
//! the SPS inside it (exp-Golomb bit reading), and the AAC AudioSpecificConfig.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_media::mux::codec::{AacConfig, AvcConfig, SpsInfo};

fuzz_target!(|data: &[u8]| {
    let _ = AvcConfig::parse(data);
    let _ = SpsInfo::parse(data);
    if let Ok(aac) = AacConfig::parse(data) {
        let _ = aac.adts_header(data.len());
        let _ = aac.adts_header(usize::MAX);
    }
});
