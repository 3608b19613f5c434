//! Builder tests: rooms from inline YAML go through `validate` and `build_children`, and the
//! children are checked for what matters, one module per child kind (ownership, selectors,
//! security, routing, secrets, recording, determinism). Whole child lists of the example rooms
//! are pinned by insta snapshots under `tests/builders/snapshots/` (`INSTA_UPDATE=always
//! cargo test -p roomcast-operator --test builders` regenerates them; review the diff). The
//! snapshot tests stay in this root module so their names keep the `builders__` prefix.

mod children;
mod config_map;
mod credentials;
mod deployment;
mod fixtures;
mod ingress;
mod network_policy;
mod pdb;
mod rbac;
mod recording;
mod secret;
mod service;

use fixtures::*;
use roomcast_operator::build::{Child, build_children};

/// The example rooms of the repository (`tests/fixtures/rooms/`).
const FULL_ROOM: &str = include_str!("../../../tests/fixtures/rooms/full.yaml");
const MINIMAL_ROOM: &str = include_str!("../../../tests/fixtures/rooms/minimal.yaml");

#[test]
fn render_prints_every_child_with_placeholder_keys() {
    let output =
        roomcast_operator::render::render(MINIMAL_ROOM, &platform_config()).expect("renders");
    let documents: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&output)
        .map(|d| serde::Deserialize::deserialize(d).expect("each document is YAML"))
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default())
        .collect();
    let expected = build(&parse_room(MINIMAL_ROOM), &platform_config());
    assert_eq!(kinds, expected.iter().map(Child::kind).collect::<Vec<_>>());
    // `<generated-in-cluster>`, base64: no real key is ever printed.
    assert_eq!(
        documents[0]["data"]["stream-key"].as_str(),
        Some("PGdlbmVyYXRlZC1pbi1jbHVzdGVyPg==")
    );
}

#[test]
fn render_refuses_a_recording_room_without_a_bucket() {
    let room = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby}\nspec: {recording: {enabled: true}}\n";
    let error = roomcast_operator::render::render(room, &platform_config()).expect_err("no bucket");
    assert_eq!(error.metric_label(), "invalid_room");
}

fn snapshot_of(document: &str) -> Vec<serde_json::Value> {
    let config = platform_config();
    let room = parse_room(document);
    let valid = valid(&room, &config);
    let inputs = inputs_for(&valid);
    build_children(&valid, &config, &inputs)
        .expect("children build")
        .iter()
        .map(|c| c.to_json().expect("serializes"))
        .collect()
}

#[test]
fn full_room_children_snapshot() {
    insta::assert_yaml_snapshot!(snapshot_of(FULL_ROOM));
}

#[test]
fn minimal_room_children_snapshot() {
    insta::assert_yaml_snapshot!(snapshot_of(MINIMAL_ROOM));
}
