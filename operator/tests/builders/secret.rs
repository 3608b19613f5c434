//! The keys Secret (generated, kept, rotated) and the copies of the operator's default Secrets.

use roomcast_operator::{
    build::{BuildInputs, build_children},
    keys::{resolve_keys, wanted_keys},
};

use crate::fixtures::*;

#[test]
fn keys_secret_holds_exactly_the_resolved_keys() {
    let config = platform_config();
    let room = room("{}");
    let valid = valid(&room, &config);
    let inputs = inputs_for(&valid);
    let children = build_children(&valid, &config, &inputs).expect("children build");
    let keys = secret(&children, "lobby-keys");
    assert_eq!(keys.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        secret_data(keys),
        string_map(&[
            ("chat-signing-key", "fixed-key-2"),
            ("stream-key", "fixed-key-1"),
        ])
    );
    assert_eq!(secret_data(keys).len(), inputs.keys.values.len());
}

#[test]
fn keys_secret_is_mounted_read_only_in_both_workers() {
    let children = build(&room("{}"), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        let d = deployment(&children, name);
        let secret = secret_volume(d, "keys");
        assert_eq!(secret.secret_name.as_deref(), Some("lobby-keys"), "{name}");
        assert_eq!(
            mount(d, "keys"),
            read_only_at("/etc/roomcast/keys"),
            "{name}"
        );
    }
}

#[test]
fn own_stream_key_secret_is_mounted_as_stream_key_and_none_is_generated() {
    let config = platform_config();
    let room = room("ingest: {streamKeySecretRef: {name: my-key, key: primary}}");
    let valid = valid(&room, &config);
    let inputs = inputs_for(&valid);
    assert_eq!(inputs.keys.generated, ["chat-signing-key"]);
    let children = build_children(&valid, &config, &inputs).expect("children build");

    let keys = secret_data(secret(&children, "lobby-keys"));
    assert!(!keys.contains_key("stream-key"), "no generated stream key");
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["chat-signing-key"]);

    let media = deployment(&children, "lobby-media");
    let source = secret_volume(media, "stream-key");
    assert_eq!(source.secret_name.as_deref(), Some("my-key"));
    assert_eq!(items_of(source), [("primary", "stream-key")]);
    assert_eq!(
        mount(media, "stream-key"),
        read_only_at("/etc/roomcast/stream-key")
    );
    assert_eq!(
        worker_config_of(&children).ingest.stream_key_file,
        "/etc/roomcast/stream-key/stream-key"
    );
}

#[test]
fn own_stream_key_defaults_to_the_stream_key_field() {
    let children = build(
        &room("ingest: {streamKeySecretRef: {name: my-key}}"),
        &platform_config(),
    );
    let source = secret_volume(deployment(&children, "lobby-media"), "stream-key");
    assert_eq!(items_of(source), [("stream-key", "stream-key")]);
}

#[test]
fn generated_stream_key_is_read_from_the_keys_secret() {
    let children = build(&room("{}"), &platform_config());
    assert!(volume(deployment(&children, "lobby-media"), "stream-key").is_none());
    assert_eq!(
        worker_config_of(&children).ingest.stream_key_file,
        "/etc/roomcast/keys/stream-key"
    );
}

#[test]
fn keys_are_not_regenerated_from_an_existing_secret() {
    let config = platform_config();
    let room = room("{}");
    let valid = valid(&room, &config);
    let first = build_children(&valid, &config, &inputs_for(&valid)).expect("children build");
    let applied = secret(&first, "lobby-keys").clone();

    // Next reconcile: the keys come from the Secret in the cluster; generating is a bug.
    let keys = resolve_keys(
        Some(&applied),
        &wanted_keys(false),
        &valid.rotation_requests,
        || unreachable!("an existing key was regenerated"),
    );
    assert!(keys.generated.is_empty());
    let inputs = BuildInputs {
        keys,
        ..BuildInputs::default()
    };
    let second = build_children(&valid, &config, &inputs).expect("children build");
    assert_eq!(
        secret_data(secret(&second, "lobby-keys")),
        secret_data(&applied)
    );
    assert_eq!(second, first, "nothing changes on the second pass");
}

#[test]
fn rotation_annotation_replaces_only_that_key_and_is_recorded_on_the_secret() {
    let config = platform_config();
    let mut room = room("{}");
    let valid_before = valid(&room, &config);
    let first =
        build_children(&valid_before, &config, &inputs_for(&valid_before)).expect("children build");
    let applied = secret(&first, "lobby-keys").clone();

    room.metadata.annotations = Some(string_map(&[(
        "roomcast.dev/rotate-stream-key",
        "2026-11-29",
    )]));
    let valid = valid(&room, &config);
    let keys = resolve_keys(
        Some(&applied),
        &wanted_keys(false),
        &valid.rotation_requests,
        || "rotated-value".to_owned(),
    );
    let children = build_children(
        &valid,
        &config,
        &BuildInputs {
            keys,
            ..BuildInputs::default()
        },
    )
    .expect("children build");
    let rotated = secret(&children, "lobby-keys");
    assert_eq!(
        secret_data(rotated),
        string_map(&[
            ("chat-signing-key", "fixed-key-2"),
            ("stream-key", "rotated-value"),
        ])
    );
    assert_eq!(
        rotated
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("roomcast.dev/rotated-stream-key"))
            .map(String::as_str),
        Some("2026-11-29")
    );
}

#[test]
fn mongodb_secret_is_copied_and_mounted_when_the_operator_has_one() {
    let children = children_of_every_kind();
    let copy = secret(&children, "lobby-mongodb");
    assert_eq!(secret_data(copy), string_map(&[("uri", "mongodb://db")]));
    for name in ["lobby-media", "lobby-chat"] {
        let d = deployment(&children, name);
        assert_eq!(
            volume(d, "mongodb")
                .and_then(|v| v.secret.as_ref())
                .and_then(|s| s.secret_name.as_deref()),
            Some("lobby-mongodb"),
            "{name}"
        );
        assert_eq!(
            mount(d, "mongodb"),
            read_only_at("/etc/roomcast/mongodb"),
            "{name}"
        );
    }
    assert_eq!(
        worker_config_of(&children).mongodb_uri_file.as_deref(),
        Some("/etc/roomcast/mongodb/uri")
    );
}
