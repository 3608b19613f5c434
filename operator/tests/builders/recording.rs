//! Recording across its children: the media pod's spool and S3 mounts, the worker config's
//! sink, and the copy of the operator's default S3 credentials.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use roomcast_operator::{build::BuildInputs, config::OperatorConfig};

use crate::fixtures::*;

fn default_s3_config() -> OperatorConfig {
    OperatorConfig {
        s3: roomcast_operator::config::DefaultS3 {
            bucket: Some("platform-vods".to_owned()),
            prefix: Some("live/".to_owned()),
            region: Some("us-east-2".to_owned()),
            endpoint: Some("https://minio.storage:9000".to_owned()),
            force_path_style: None,
            credentials_secret: Some("roomcast-s3".to_owned()),
            ..Default::default()
        },
        share_default_credentials: true,
        ..platform_config()
    }
}

/// The controller passes the default credentials along (empty here: the content is not
/// what these tests look at).
fn with_empty_default_s3(inputs: BuildInputs) -> BuildInputs {
    BuildInputs {
        default_s3_credentials: Some(BTreeMap::new()),
        ..inputs
    }
}

#[test]
fn room_without_recording_has_no_spool_or_s3_mount() {
    // Even with an operator default bucket, a room that does not record gets nothing of it.
    let config = default_s3_config();
    let children = build(&room("recording: {enabled: false}"), &config);
    let media = deployment(&children, "lobby-media");
    assert!(volume(media, "spool").is_none());
    assert!(volume(media, "s3-credentials").is_none());
    assert!(mount(media, "spool").is_none());
    assert!(mount(media, "s3-credentials").is_none());
    assert!(find(&children, "Secret", "lobby-s3").is_none());
    assert_eq!(worker_config_of(&children).recording, None);
    assert_eq!(service_account_annotations(&children), None);
}

#[test]
fn recording_with_room_s3_mounts_its_credentials_secret_read_only() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let media = deployment(&children, "lobby-media");
    let secret = secret_volume(media, "s3-credentials");
    assert_eq!(secret.secret_name.as_deref(), Some("s3-creds"));
    assert_eq!(
        mount(media, "s3-credentials"),
        read_only_at("/etc/roomcast/s3")
    );
    // Only the media worker records.
    assert!(volume(deployment(&children, "lobby-chat"), "s3-credentials").is_none());
    // The room's own Secret is used as is: nothing copied.
    assert!(find(&children, "Secret", "lobby-s3").is_none());

    let recording = recording_of(&children);
    assert_eq!(recording.bucket, "vods");
    assert_eq!(recording.prefix, "rooms/");
    assert_eq!(recording.region, "eu-west-1");
    assert_eq!(
        recording.credentials_dir.as_deref(),
        Some("/etc/roomcast/s3")
    );
    assert!(!recording.force_path_style, "AWS endpoint: virtual hosts");
}

#[test]
fn recording_without_room_s3_uses_the_operator_default_bucket_and_credentials() {
    let config = default_s3_config();
    let default_credentials = secret_bytes(&[
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
    ]);
    let children = build_with(&room("recording: {enabled: true}"), &config, |inputs| {
        BuildInputs {
            default_s3_credentials: Some(default_credentials.clone()),
            ..inputs
        }
    });

    let copy = secret(&children, "lobby-s3");
    assert_eq!(copy.data.as_ref(), Some(&default_credentials));
    assert_eq!(copy.metadata.namespace.as_deref(), Some(NAMESPACE));

    let media = deployment(&children, "lobby-media");
    let mounted = volume(media, "s3-credentials")
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.as_deref());
    assert_eq!(mounted, Some("lobby-s3"));
    assert_eq!(
        mount(media, "s3-credentials"),
        read_only_at("/etc/roomcast/s3")
    );

    let recording = recording_of(&children);
    assert_eq!(recording.bucket, "platform-vods");
    assert_eq!(recording.prefix, "live/");
    assert_eq!(recording.region, "us-east-2");
    assert_eq!(recording.endpoint, "https://minio.storage:9000");
    assert!(recording.force_path_style, "custom endpoint: path style");
    assert_eq!(
        recording.credentials_dir.as_deref(),
        Some("/etc/roomcast/s3")
    );
}

#[test]
fn the_default_credentials_secret_is_copied_before_the_media_deployment_mounts_it() {
    let config = default_s3_config();
    let children = build_with(
        &room("recording: {enabled: true}"),
        &config,
        with_empty_default_s3,
    );
    let position = |kind: &str, name: &str| {
        children
            .iter()
            .position(|c| c.kind() == kind && c.name() == name)
            .expect("child present")
    };
    assert!(position("Secret", "lobby-s3") < position("Deployment", "lobby-media"));
}

#[test]
fn recording_with_room_s3_does_not_copy_the_default_credentials() {
    let config = default_s3_config();
    let room = room("recording: {enabled: true, s3: {bucket: own-bucket}}");
    // Even if the controller had passed the default Secret along, it is not used.
    let children = build_with(&room, &config, with_empty_default_s3);
    assert!(find(&children, "Secret", "lobby-s3").is_none());
    let recording = recording_of(&children);
    assert_eq!(recording.bucket, "own-bucket");
    assert_eq!(recording.prefix, "", "operator defaults do not leak in");
}

#[test]
fn recording_room_s3_without_credentials_uses_the_pod_identity() {
    let children = build(
        &room("recording: {enabled: true, s3: {bucket: vods}}"),
        &platform_config(),
    );
    let media = deployment(&children, "lobby-media");
    assert!(volume(media, "s3-credentials").is_none());
    assert!(volume(media, "spool").is_some());
    let recording = recording_of(&children);
    assert_eq!(recording.credentials_dir, None);
}

#[test]
fn recording_spool_is_an_empty_dir_limited_to_spool_size_mib() {
    let children = build(
        &room("recording: {enabled: true, spoolSizeMib: 512, s3: {bucket: vods}}"),
        &platform_config(),
    );
    let media = deployment(&children, "lobby-media");
    assert_eq!(
        empty_dir_limit(media, "spool"),
        Some(Quantity("512Mi".to_owned()))
    );
    assert_eq!(
        mount(media, "spool"),
        Some(("/var/spool/roomcast".to_owned(), false)),
        "the spool is writable"
    );
    let recording = recording_of(&children);
    assert_eq!(recording.spool_dir, "/var/spool/roomcast");
    assert_eq!(recording.spool_size_mib, 512);
}

#[test]
fn recording_spool_defaults_to_two_gibibytes() {
    let children = build(
        &room("recording: {enabled: true, s3: {bucket: vods}}"),
        &platform_config(),
    );
    assert_eq!(
        empty_dir_limit(deployment(&children, "lobby-media"), "spool"),
        Some(Quantity("2048Mi".to_owned()))
    );
}
