//! A whole RTMP server connection after the handshake: every byte a publisher can send reaches
//! the session (chunking, AMF0 commands, connect/publish state, metadata, media).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionResult};

fuzz_target!(|data: &[u8]| {
    let mut config = ServerSessionConfig::new();
    config.max_message_length = 1 << 20;
    let Ok((mut session, _)) = ServerSession::new(config) else {
        return;
    };
    for piece in data.chunks(997) {
        match session.handle_input(piece) {
            Ok(results) => {
                for result in results {
                    if let ServerSessionResult::RaisedEvent(
                        rml_rtmp::sessions::ServerSessionEvent::PublishStreamRequested {
                            request_id,
                            ..
                        },
                    ) = result
                    {
                        let _ = session.accept_request(request_id);
                    }
                }
            }
            Err(_) => return,
        }
    }
});
