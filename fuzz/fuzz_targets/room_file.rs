//! What a tenant writes: a StreamRoom file (`roomcast dev -f`, `render`; the operator checks
//! the same spec with the same rules), read strictly and validated, and the worker config the
//! operator derives from it as the media worker parses it. roomcast parses no playlist from
//! the network (it writes playlists, never reads one), so this tenant input stands where the
//! issue asked for playlist parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast_crds::{room_file::rooms_from_yaml, validate::validate_room, worker_config::WorkerConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rooms) = rooms_from_yaml(text) {
        for room in &rooms {
            let _ = validate_room(room);
        }
    }
    if let Ok(worker) = serde_yaml::from_str::<WorkerConfig>(text) {
        let _ = roomcast_media::RoomConfig::from_worker_config(&worker);
    }
});
