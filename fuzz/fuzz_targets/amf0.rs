//! AMF0 values as an RTMP peer sends them in commands and `@setDataFrame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rml_amf0::deserialize(&mut std::io::Cursor::new(data));
});
