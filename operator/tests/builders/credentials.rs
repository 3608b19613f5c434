//! Tenant isolation of credentials: the platform's default Secrets reach a room's namespace
//! only when the platform opts in, a room can bring its own instead, and nothing secret is
//! written where a tenant who may read ConfigMaps or pod specs would see it.

use roomcast_operator::{
    build::{BuildInputs, Child},
    config::{DefaultS3, OperatorConfig},
    validate::validate,
};

use crate::fixtures::*;

/// A platform with every default Secret configured, not shared (the chart's default).
fn unshared_platform() -> OperatorConfig {
    OperatorConfig {
        s3: DefaultS3 {
            bucket: Some("platform-vods".to_owned()),
            credentials_secret: Some("roomcast-s3".to_owned()),
            ..DefaultS3::default()
        },
        mongodb_secret: Some("roomcast-mongodb".to_owned()),
        redis_secret: Some("roomcast-redis".to_owned()),
        share_default_credentials: false,
        ..bare_config()
    }
}

#[test]
fn rooms_using_unshared_platform_credentials_are_refused_naming_what_to_create() {
    let config = unshared_platform();
    for (spec, what, fix) in [
        (
            "recording: {enabled: true}\nmongodbSecretRef: {name: own-mongo}",
            "needs S3 credentials",
            "credentialsSecretRef",
        ),
        ("{}", "needs MongoDB credentials", "spec.mongodbSecretRef"),
    ] {
        let error = validate(&room(spec), &config).expect_err(spec);
        assert_eq!(error.reason(), "MissingCredentials", "{spec}");
        let message = error.to_string();
        for expected in [
            what,
            fix,
            "recording.shareDefaultCredentials",
            "shows/lobby",
        ] {
            assert!(
                message.contains(expected),
                "{spec}: {expected:?} not in {message}"
            );
        }
    }
}

#[test]
fn a_room_without_chat_or_recording_needs_no_store() {
    let config = unshared_platform();
    let valid = validate(&room("chat: {enabled: false}"), &config).expect("needs nothing");
    assert_eq!(valid.mongodb, None);
}

#[test]
fn a_room_with_its_own_secrets_gets_no_copy_of_the_platforms_and_mounts_one_key_each() {
    let config = unshared_platform();
    let room = room(
        "chat: {replicas: 3, redisSecretRef: {name: own-redis}}\nmongodbSecretRef: {name: own-mongo}\nrecording: {enabled: true, s3: {bucket: own-vods, credentialsSecretRef: {name: own-s3}}}",
    );
    let children = build(&room, &config);
    for copy in ["lobby-s3", "lobby-mongodb", "lobby-redis"] {
        assert!(find(&children, "Secret", copy).is_none(), "{copy}");
    }
    let chat = deployment(&children, "lobby-chat");
    assert_eq!(pod_spec(chat).containers.len(), 1);
    assert_eq!(
        chat.spec.as_ref().and_then(|s| s.replicas),
        Some(3),
        "own Redis and MongoDB let chat scale out"
    );
    for (deployment_name, volume, secret, key) in [
        ("lobby-chat", "redis", "own-redis", "url"),
        ("lobby-chat", "mongodb", "own-mongo", "uri"),
        ("lobby-media", "mongodb", "own-mongo", "uri"),
    ] {
        let source = secret_volume(deployment(&children, deployment_name), volume);
        assert_eq!(
            source.secret_name.as_deref(),
            Some(secret),
            "{deployment_name}"
        );
        assert_eq!(items_of(source), [(key, key)], "{deployment_name} {volume}");
    }
    assert!(
        volume(deployment(&children, "lobby-media"), "redis").is_none(),
        "media has no use for Redis"
    );
    let worker = worker_config_of(&children);
    assert_eq!(
        worker.chat.expect("chat").redis_url_file.as_deref(),
        Some("/etc/roomcast/redis/url")
    );
    assert_eq!(
        worker.mongodb_uri_file.as_deref(),
        Some("/etc/roomcast/mongodb/uri")
    );
}

#[test]
fn without_redis_of_its_own_or_shared_chat_runs_one_replica() {
    let config = unshared_platform();
    let room = room("chat: {replicas: 3}\nmongodbSecretRef: {name: own-mongo}");
    let valid = validate(&room, &config).expect("valid");
    assert_eq!((valid.chat_replicas, &valid.redis), (1, &None));
    assert!(valid.chat_scaled_down());
}

#[test]
fn nothing_secret_reaches_a_config_map_or_a_plain_env_value() {
    const MARK: &str = "hunter2";
    let config = OperatorConfig {
        share_default_credentials: true,
        ..unshared_platform()
    };
    let room = room("chat: {replicas: 2}\nrecording: {enabled: true}");
    let children = build_with(&room, &config, |inputs| BuildInputs {
        default_s3_credentials: Some(secret_bytes(&[("AWS_SECRET_ACCESS_KEY", MARK)])),
        default_mongodb: Some(secret_bytes(&[("uri", &format!("mongodb://u:{MARK}@db"))])),
        default_redis: Some(secret_bytes(&[(
            "url",
            &format!("redis://:{MARK}@redis:6379"),
        )])),
        ..inputs
    });
    let mut secrets_with_mark = Vec::new();
    for child in &children {
        if let Child::Secret(secret) = child {
            let holds_mark = secret
                .data
                .iter()
                .flatten()
                .any(|(_, v)| String::from_utf8_lossy(&v.0).contains(MARK));
            if holds_mark {
                secrets_with_mark.push(child.name().to_owned());
            }
            continue;
        }
        // Everything else is readable with less than Secret access: ConfigMaps, and the
        // Deployments whose pod template shows every plain env value.
        let text = serde_json::to_string(&child.to_json().expect("json")).expect("text");
        assert!(
            !text.contains(MARK),
            "{} {} carries a secret",
            child.kind(),
            child.name()
        );
    }
    assert_eq!(
        secrets_with_mark,
        ["lobby-s3", "lobby-mongodb", "lobby-redis"]
    );
    let worker = worker_config_of(&children);
    assert!(worker.chat.expect("chat").redis_url_file.is_some());
}
