//! What a chat client sends: the JSON payloads of every request, the auth object, and the
//! token in it (HS256 JWT parsing and verification).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_chat::protocol::{Auth, BanUser, DeleteMessage, PostMessage, SetSlowMode, UnbanUser};
use roomcast_chat::token::{SigningKey, Token, verify};
use roomcast_runtime::Secret;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<PostMessage>(data);
    let _ = serde_json::from_slice::<DeleteMessage>(data);
    let _ = serde_json::from_slice::<BanUser>(data);
    let _ = serde_json::from_slice::<UnbanUser>(data);
    let _ = serde_json::from_slice::<SetSlowMode>(data);
    let _ = serde_json::from_slice::<Auth>(data);
    if let (Ok(text), Ok(key)) = (
        std::str::from_utf8(data),
        SigningKey::new(Secret::new("fuzz-signing-key-of-at-least-32-bytes!!")),
    ) {
        let _ = verify(&key, &Token::new(text), 1_700_000_000);
    }
});
