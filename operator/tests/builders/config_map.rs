//! The ConfigMap holding the worker config.

use roomcast_operator::build::worker_config;

use crate::fixtures::*;

#[test]
fn worker_config_in_the_config_map_parses_back_to_what_was_built() {
    let config = platform_config();
    let room = room(FULL_SPEC);
    let children = build(&room, &config);
    let parsed = worker_config_of(&children);
    assert_eq!(parsed, worker_config(&valid(&room, &config)));
    assert_eq!(parsed.room.namespace, NAMESPACE);
    assert_eq!(parsed.room.name, ROOM);
    assert_eq!(parsed.playback.path_prefix, "/shows/lobby");
}

#[test]
fn worker_config_names_the_files_the_secrets_are_mounted_at() {
    let children = build(&room("{}"), &platform_config());
    let parsed = worker_config_of(&children);
    assert_eq!(
        parsed.ingest.stream_key_file,
        "/etc/roomcast/keys/stream-key"
    );
    assert_eq!(
        parsed.chat.expect("chat config").signing_key_file,
        "/etc/roomcast/keys/chat-signing-key"
    );
    assert_eq!(parsed.playback.origin_secret_file, None);
    assert_eq!(parsed.mongodb_uri_file, None);

    let children = build(
        &room("playback: {cdn: {originSecretRef: {name: cdn-origin}}}"),
        &platform_config(),
    );
    assert_eq!(
        worker_config_of(&children)
            .playback
            .origin_secret_file
            .as_deref(),
        Some("/etc/roomcast/origin/origin-secret")
    );
}
