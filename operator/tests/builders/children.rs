//! The whole child list of a room: what is built, in which order, owned and labelled how;
//! which rooms are refused before anything is built; determinism and what a change rolls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use roomcast_crds::worker_config::CONFIG_KEY;
use roomcast_operator::{
    build::{Child, content_hash},
    labels,
    validate::{RoomError, validate},
};

use crate::fixtures::*;

#[test]
fn full_room_builds_every_child_kind_in_apply_order() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let listed: Vec<(&str, &str)> = children.iter().map(|c| (c.kind(), c.name())).collect();
    assert_eq!(
        listed,
        [
            ("Secret", "lobby-keys"),
            ("ConfigMap", "lobby-config"),
            ("ServiceAccount", "lobby-worker"),
            ("Role", "lobby-worker"),
            ("RoleBinding", "lobby-worker"),
            ("NetworkPolicy", "lobby-media"),
            ("Service", "lobby-rtmp"),
            ("Service", "lobby-hls"),
            ("Deployment", "lobby-media"),
            ("NetworkPolicy", "lobby-chat"),
            ("Service", "lobby-chat"),
            ("Deployment", "lobby-chat"),
            ("PodDisruptionBudget", "lobby-chat"),
            ("Ingress", "lobby"),
            ("Ingress", "lobby-chat"),
        ]
    );
}

#[test]
fn every_child_is_controlled_by_the_room() {
    for child in children_of_every_kind() {
        let owners = child
            .meta()
            .owner_references
            .as_ref()
            .unwrap_or_else(|| panic!("{} {} has no owner", child.kind(), child.name()));
        assert_eq!(owners.len(), 1, "{} {}", child.kind(), child.name());
        let owner = &owners[0];
        assert_eq!(owner.api_version, "roomcast.dev/v1alpha1");
        assert_eq!(owner.kind, "StreamRoom");
        assert_eq!(owner.name, ROOM);
        assert_eq!(owner.uid, UID);
        assert_eq!(
            owner.controller,
            Some(true),
            "{} {} must have the room as controller",
            child.kind(),
            child.name()
        );
        assert_eq!(
            owner.block_owner_deletion,
            Some(true),
            "{} {}: a foreground deletion of the room must wait for it",
            child.kind(),
            child.name()
        );
        assert_eq!(child.meta().namespace.as_deref(), Some(NAMESPACE));
    }
}

#[test]
fn every_child_carries_the_standard_labels() {
    for child in children_of_every_kind() {
        let what = format!("{} {}", child.kind(), child.name());
        let labels = child.meta().labels.as_ref().expect("labels");
        assert_eq!(labels[labels::NAME], "roomcast", "{what}");
        assert_eq!(labels[labels::INSTANCE], ROOM, "{what}");
        assert_eq!(labels[labels::MANAGED_BY], "roomcast-operator", "{what}");
        assert_eq!(labels[labels::ROOM], ROOM, "{what}");
        let expected_component = match (child.kind(), child.name()) {
            (
                "Deployment" | "Service" | "NetworkPolicy",
                "lobby-media" | "lobby-rtmp" | "lobby-hls",
            ) => "media",
            ("Ingress", "lobby") => "media",
            (_, "lobby-chat") => "chat",
            _ => "room",
        };
        assert_eq!(labels[labels::COMPONENT], expected_component, "{what}");
    }
}

#[test]
fn every_child_records_the_hash_of_its_own_content() {
    for child in children_of_every_kind() {
        let what = format!("{} {}", child.kind(), child.name());
        let hash = child
            .applied_hash()
            .unwrap_or_else(|| panic!("{what} has no applied-hash"))
            .to_owned();
        assert_eq!(hash.len(), 16, "{what}: {hash}");
        assert!(
            hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: {hash}"
        );

        // The hash is of the object as it was before the annotation was added.
        let mut json = child.to_json().expect("serializes");
        let annotations = json["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations");
        annotations.remove(labels::APPLIED_HASH);
        if annotations.is_empty() {
            json["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("annotations");
        }
        assert_eq!(content_hash(&json), hash, "{what}");
    }
}

#[test]
fn recording_without_any_bucket_is_refused() {
    let error = validate(&room("recording: {enabled: true}"), &platform_config())
        .expect_err("no bucket anywhere");
    assert_eq!(error, RoomError::RecordingWithoutBucket);
    assert_eq!(error.reason(), "RecordingWithoutBucket");
}

#[test]
fn room_breaking_a_schema_rule_is_refused_before_anything_is_built() {
    // dvrWindowSeconds must hold at least 3 segments (a CEL rule of the CRD).
    let error = validate(
        &room("transcode: {segmentSeconds: 10, dvrWindowSeconds: 20}"),
        &platform_config(),
    )
    .expect_err("CEL rule broken");
    assert_eq!(error.reason(), "InvalidSpec");
    let RoomError::Schema(invalid) = error else {
        panic!("expected a schema error, got {error:?}");
    };
    assert!(
        invalid
            .violations
            .iter()
            .any(|v| v.message.contains("dvrWindowSeconds")),
        "{invalid}"
    );
}

#[test]
fn room_without_uid_is_refused() {
    let mut room = room("{}");
    room.metadata.uid = None;
    let error = validate(&room, &platform_config()).expect_err("no uid, no owner reference");
    assert_eq!(error.reason(), "InvalidObject");
}

fn hashes(children: &[Child]) -> BTreeMap<(String, String), String> {
    children
        .iter()
        .map(|c| {
            (
                (c.kind().to_owned(), c.name().to_owned()),
                c.applied_hash().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn building_twice_gives_equal_children() {
    let config = platform_config();
    let room = room(FULL_SPEC);
    let first = build(&room, &config);
    let second = build(&room, &config);
    assert_eq!(first, second);
    let json = |children: &[Child]| {
        children
            .iter()
            .map(|c| c.to_json().expect("serializes").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(json(&first), json(&second));
}

#[test]
fn a_spec_change_rolls_the_media_pods_and_leaves_unrelated_children_alone() {
    let config = platform_config();
    let before = build(&room("transcode: {segmentSeconds: 2}"), &config);
    let after = build(&room("transcode: {segmentSeconds: 4}"), &config);

    let yaml = |children: &[Child]| {
        config_map(children, "lobby-config")
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .cloned()
    };
    assert_ne!(yaml(&before), yaml(&after), "ConfigMap content changes");
    assert_eq!(worker_config_of(&after).transcode.segment_seconds, 4);

    let media_before = deployment(&before, "lobby-media");
    let media_after = deployment(&after, "lobby-media");
    let config_hash =
        |d: &Deployment| pod_annotation(d, "roomcast.dev/config-hash").map(str::to_owned);
    assert!(config_hash(media_before).is_some());
    assert_ne!(
        config_hash(media_before),
        config_hash(media_after),
        "the media pod template changes, so the pods roll"
    );

    let (hashes_before, hashes_after) = (hashes(&before), hashes(&after));
    let key = |kind: &str, name: &str| (kind.to_owned(), name.to_owned());
    for changed in [
        key("ConfigMap", "lobby-config"),
        key("Deployment", "lobby-media"),
    ] {
        assert_ne!(
            hashes_before[&changed], hashes_after[&changed],
            "{changed:?}"
        );
    }
    for unchanged in [
        key("Service", "lobby-rtmp"),
        key("Service", "lobby-hls"),
        key("Secret", "lobby-keys"),
        key("Role", "lobby-worker"),
        key("Ingress", "lobby"),
        key("NetworkPolicy", "lobby-media"),
        key("NetworkPolicy", "lobby-chat"),
    ] {
        assert_eq!(
            hashes_before[&unchanged], hashes_after[&unchanged],
            "{unchanged:?}"
        );
    }
}

#[test]
fn media_only_change_does_not_restart_chat_pods() {
    let config = platform_config();
    let hashes = |spec: &str| {
        let children = build(&room(spec), &config);
        (
            pod_annotation(
                deployment(&children, "lobby-media"),
                "roomcast.dev/config-hash",
            )
            .map(str::to_owned),
            pod_annotation(
                deployment(&children, "lobby-chat"),
                "roomcast.dev/config-hash",
            )
            .map(str::to_owned),
        )
    };
    let (media_before, chat_before) = hashes("{}");
    let (media_after, chat_after) = hashes("transcode: {segmentSeconds: 4}");
    assert!(media_before.is_some() && chat_before.is_some());
    assert_ne!(
        media_before, media_after,
        "media restarts on a transcode change"
    );
    assert_eq!(
        chat_before, chat_after,
        "chat keeps its viewers' connections"
    );
    let (_, chat_changed) = hashes("chat: {maxMessageLength: 200}");
    assert_ne!(chat_before, chat_changed, "chat restarts on a chat change");
}

#[test]
fn room_with_chat_disabled_has_no_chat_objects() {
    let children = build(
        &room("chat: {enabled: false}\nplayback: {host: tv.example.org}"),
        &platform_config(),
    );
    assert!(find(&children, "Deployment", "lobby-chat").is_none());
    assert!(find(&children, "Service", "lobby-chat").is_none());
    assert!(find(&children, "PodDisruptionBudget", "lobby-chat").is_none());
    assert_eq!(names_of(&children, "Ingress"), ["lobby"]);
    assert_eq!(worker_config_of(&children).chat, None);
    // The media side is untouched.
    assert!(find(&children, "Deployment", "lobby-media").is_some());
}
