//! The two worker Deployments: pod security, probes, replicas, images, resources, mounts.

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{KeyToPath, ResourceRequirements},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use roomcast_operator::{
    build::{BuildInputs, Child},
    config::OperatorConfig,
};

use crate::fixtures::*;

#[test]
fn deployments_select_their_own_pod_template() {
    let children = build(&room("{}"), &platform_config());
    for (name, other) in [("lobby-media", "lobby-chat"), ("lobby-chat", "lobby-media")] {
        let d = deployment(&children, name);
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.as_ref())
            .expect("matchLabels");
        assert!(is_subset(selector, pod_labels(d)), "{name}");
        assert!(
            !is_subset(selector, pod_labels(deployment(&children, other))),
            "{name} also selects {other} pods"
        );
    }
}

#[test]
fn both_deployments_meet_the_restricted_pod_security_standard() {
    let children = build(&room(FULL_SPEC), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        let d = deployment(&children, name);
        let pod = pod_spec(d)
            .security_context
            .as_ref()
            .expect("pod securityContext");
        assert_eq!(pod.run_as_non_root, Some(true), "{name}");
        assert_eq!(
            pod.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault"),
            "{name}"
        );

        let c = container(d)
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(c.run_as_non_root, Some(true), "{name}");
        assert_eq!(c.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(c.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(c.privileged, None, "{name}");
        let capabilities = c.capabilities.as_ref().expect("capabilities");
        assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(capabilities.add, None, "{name}");
        assert_eq!(
            c.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault"),
            "{name}"
        );

        // Restricted allows only these volume types.
        for v in pod_spec(d).volumes.iter().flatten() {
            assert!(
                v.config_map.is_some() || v.secret.is_some() || v.empty_dir.is_some(),
                "{name}: volume {} is not configMap/secret/emptyDir",
                v.name
            );
        }
        assert_eq!(pod_spec(d).host_network, None, "{name}");
    }
}

#[test]
fn workers_probe_healthz_and_readyz_on_their_http_port() {
    let children = build(&room("{}"), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        let c = container(deployment(&children, name));
        let http_get = |probe: Option<&k8s_openapi::api::core::v1::Probe>| {
            probe
                .and_then(|p| p.http_get.as_ref())
                .map(|h| (h.path.clone().unwrap_or_default(), h.port.clone()))
        };
        let http = IntOrString::String("http".to_owned());
        assert_eq!(
            http_get(c.liveness_probe.as_ref()),
            Some(("/healthz".to_owned(), http.clone())),
            "{name}"
        );
        assert_eq!(
            http_get(c.readiness_probe.as_ref()),
            Some(("/readyz".to_owned(), http)),
            "{name}"
        );
        let http_port = c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .expect("a port named http");
        assert_eq!(http_port.container_port, 8080, "{name}");
    }
}

#[test]
fn workers_run_as_the_room_worker_service_account() {
    let children = build(&room("{}"), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        assert_eq!(
            pod_spec(deployment(&children, name))
                .service_account_name
                .as_deref(),
            Some("lobby-worker"),
            "{name}"
        );
    }
}

#[test]
fn media_deployment_is_a_single_replica_recreated_on_update() {
    let children = build(&room("chat: {replicas: 5}"), &platform_config());
    let spec = deployment(&children, "lobby-media")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(spec.replicas, Some(1));
    let strategy = spec.strategy.as_ref().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
    assert_eq!(strategy.rolling_update, None);
}

#[test]
fn chat_replicas_follow_the_spec_when_redis_and_mongodb_are_configured() {
    let config = OperatorConfig {
        mongodb_secret: Some("roomcast-mongodb".to_owned()),
        ..platform_config()
    };
    let room = room("chat: {replicas: 3}");
    let children = build_with(&room, &config, |inputs| BuildInputs {
        default_mongodb: Some(secret_bytes(&[("uri", "mongodb://mongo:27017/roomcast")])),
        default_redis: Some(secret_bytes(&[("url", "redis://:pw@redis:6379")])),
        ..inputs
    });
    let spec = deployment(&children, "lobby-chat")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("RollingUpdate")
    );

    let chat = worker_config_of(&children).chat.expect("chat config");
    assert_eq!(chat.spec.replicas, 3);
    assert_eq!(
        chat.redis_url_file.as_deref(),
        Some("/etc/roomcast/redis/url")
    );
    let redis = secret_volume(deployment(&children, "lobby-chat"), "redis");
    assert_eq!(redis.secret_name.as_deref(), Some("lobby-redis"));
    assert!(!valid(&room, &config).chat_scaled_down());
}

#[test]
fn chat_runs_one_replica_without_mongodb_even_with_redis() {
    let config = platform_config();
    let room = room("chat: {replicas: 3}");
    let children = build(&room, &config);
    assert_eq!(
        deployment(&children, "lobby-chat")
            .spec
            .as_ref()
            .and_then(|s| s.replicas),
        Some(1)
    );
    assert!(valid(&room, &config).chat_scaled_down());
}

#[test]
fn chat_runs_one_replica_without_redis() {
    let config = bare_config();
    let room = room("chat: {replicas: 3}");
    let children = build(&room, &config);
    let spec = deployment(&children, "lobby-chat")
        .spec
        .as_ref()
        .expect("spec");
    assert_eq!(spec.replicas, Some(1));

    let chat = worker_config_of(&children).chat.expect("chat config");
    assert_eq!(chat.spec.replicas, 1);
    assert_eq!(chat.redis_url_file, None);
    assert!(valid(&room, &config).chat_scaled_down());
}

#[test]
fn single_chat_replica_does_not_use_redis_even_when_configured() {
    let children = build(&room("chat: {replicas: 1}"), &platform_config());
    let chat = worker_config_of(&children).chat.expect("chat config");
    assert_eq!(chat.redis_url_file, None);
}

#[test]
fn workers_use_the_operator_images_and_pull_policy() {
    let config = OperatorConfig {
        media_image: "registry.example/media:1".to_owned(),
        chat_image: "registry.example/chat:1".to_owned(),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ..platform_config()
    };
    let children = build(&room("{}"), &config);
    for (name, image, command) in [
        ("lobby-media", "registry.example/media:1", "roomcast-media"),
        ("lobby-chat", "registry.example/chat:1", "roomcast-chat"),
    ] {
        let c = container(deployment(&children, name));
        assert_eq!(c.image.as_deref(), Some(image), "{name}");
        assert_eq!(
            c.image_pull_policy.as_deref(),
            Some("IfNotPresent"),
            "{name}"
        );
        assert_eq!(
            c.command.as_deref(),
            Some(&[command.to_owned()][..]),
            "{name}"
        );
        assert_eq!(
            c.args.as_deref(),
            Some(
                &[
                    "--config".to_owned(),
                    "/etc/roomcast/config/room.yaml".to_owned()
                ][..]
            ),
            "{name}"
        );
    }
}

#[test]
fn chat_pods_mount_only_the_config_keys_and_scratch_space() {
    // The full room has an own stream key, recording credentials and a CDN origin secret:
    // none of them belongs in a chat pod.
    let children = build(&room(FULL_SPEC), &platform_config());
    assert_eq!(
        volume_names(deployment(&children, "lobby-chat")),
        ["config", "keys", "tmp", "data"]
    );
    assert_eq!(
        volume_names(deployment(&children, "lobby-media")),
        [
            "config",
            "tmp",
            "data",
            "stream-key",
            "origin-secret",
            "s3-credentials",
            "spool"
        ]
    );
}

fn requirements(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantities(&[("cpu", cpu), ("memory", memory)])),
        ..ResourceRequirements::default()
    }
}

fn config_with_default_resources() -> OperatorConfig {
    OperatorConfig {
        media_resources: Some(requirements("1500m", "768Mi")),
        chat_resources: Some(requirements("200m", "256Mi")),
        ..platform_config()
    }
}

fn resources_of(children: &[Child], deployment_name: &str) -> Option<ResourceRequirements> {
    container(deployment(children, deployment_name))
        .resources
        .clone()
}

#[test]
fn room_resources_beat_the_operator_defaults() {
    let children = build(
        &room(
            r#"
resources:
  media: {requests: {cpu: "3", memory: 3Gi}, limits: {memory: 4Gi}}
  chat: {requests: {cpu: 50m, memory: 64Mi}}
"#,
        ),
        &config_with_default_resources(),
    );
    assert_eq!(
        resources_of(&children, "lobby-media"),
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "3"), ("memory", "3Gi")])),
            limits: Some(quantities(&[("memory", "4Gi")])),
            ..ResourceRequirements::default()
        })
    );
    assert_eq!(
        resources_of(&children, "lobby-chat"),
        Some(requirements("50m", "64Mi"))
    );
}

#[test]
fn operator_default_resources_beat_the_builtin_fallback() {
    let children = build(&room("{}"), &config_with_default_resources());
    assert_eq!(
        resources_of(&children, "lobby-media"),
        Some(requirements("1500m", "768Mi"))
    );
    assert_eq!(
        resources_of(&children, "lobby-chat"),
        Some(requirements("200m", "256Mi"))
    );
}

#[test]
fn room_resources_for_one_worker_leave_the_other_on_its_default() {
    let children = build(
        &room(r#"resources: {media: {requests: {cpu: "3", memory: 3Gi}}}"#),
        &config_with_default_resources(),
    );
    assert_eq!(
        resources_of(&children, "lobby-media"),
        Some(requirements("3", "3Gi"))
    );
    assert_eq!(
        resources_of(&children, "lobby-chat"),
        Some(requirements("200m", "256Mi"))
    );
}

#[test]
fn builtin_fallback_resources_apply_when_nobody_sets_any() {
    let children = build(&room("{}"), &platform_config());
    assert_eq!(
        resources_of(&children, "lobby-media"),
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "1"), ("memory", "512Mi")])),
            limits: Some(quantities(&[("memory", "2Gi")])),
            ..ResourceRequirements::default()
        })
    );
    assert_eq!(
        resources_of(&children, "lobby-chat"),
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "512Mi")])),
            ..ResourceRequirements::default()
        })
    );
}

#[test]
fn origin_secret_is_mounted_in_the_media_pod() {
    let children = build(
        &room("playback: {cdn: {originSecretRef: {name: cdn-origin}}}"),
        &platform_config(),
    );
    let media = deployment(&children, "lobby-media");
    let source = secret_volume(media, "origin-secret");
    assert_eq!(source.secret_name.as_deref(), Some("cdn-origin"));
    assert_eq!(items_of(source), [("origin-secret", "origin-secret")]);
    assert_eq!(
        mount(media, "origin-secret"),
        read_only_at("/etc/roomcast/origin")
    );
}

#[test]
fn every_mounted_volume_is_declared_and_every_volume_is_mounted() {
    let children = build(&room(FULL_SPEC), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        let d = deployment(&children, name);
        let mut mounted: Vec<String> = container(d)
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.name.clone())
            .collect();
        let mut declared = volume_names(d);
        mounted.sort();
        declared.sort();
        assert_eq!(mounted, declared, "{name}");
    }
}

#[test]
fn chat_gets_the_operators_trusted_proxies_and_media_does_not() {
    let env_of = |children: &[Child], name: &str| -> Vec<(String, Option<String>)> {
        pod_spec(deployment(children, name)).containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    };
    let config = OperatorConfig {
        chat_trusted_proxies: "10.244.0.0/16".to_owned(),
        ..platform_config()
    };
    let children = build(&room("{}"), &config);
    let wanted = (
        roomcast_operator::build::CHAT_TRUSTED_PROXIES_ENV.to_owned(),
        Some("10.244.0.0/16".to_owned()),
    );
    assert!(env_of(&children, "lobby-chat").contains(&wanted));
    assert!(
        !env_of(&children, "lobby-media")
            .iter()
            .any(|(name, _)| name == &wanted.0),
        "media reads no forwarded-for header"
    );
    // Nothing configured: chat's own default (read no header), so no variable at all.
    let children = build(&room("{}"), &platform_config());
    assert!(
        !env_of(&children, "lobby-chat")
            .iter()
            .any(|(name, _)| name == &wanted.0)
    );
}

/// The keys of `<room>-keys` a Deployment's pods can read, each with the file it lands at.
fn room_key_files(deployment: &Deployment) -> Vec<(String, String)> {
    let spec = pod_spec(deployment);
    let mounts = spec.containers[0].volume_mounts.clone().unwrap_or_default();
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v, v.secret.as_ref()?)))
        .filter(|(_, s)| s.secret_name.as_deref() == Some("lobby-keys"))
        .flat_map(|(volume, secret)| {
            let dir = mounts
                .iter()
                .find(|m| m.name == volume.name)
                .map(|m| m.mount_path.clone())
                .unwrap_or_default();
            // No `items` would expose every key of the Secret.
            let items = secret.items.clone().unwrap_or_else(|| {
                vec![KeyToPath {
                    key: "*".to_owned(),
                    path: "*".to_owned(),
                    ..KeyToPath::default()
                }]
            });
            items
                .into_iter()
                .map(move |i| (i.key, format!("{dir}/{}", i.path)))
        })
        .collect()
}

#[test]
fn each_pod_mounts_only_the_room_key_it_uses_where_its_config_looks() {
    let children = build(&room("{}"), &platform_config());
    let worker = worker_config_of(&children);
    assert_eq!(
        room_key_files(deployment(&children, "lobby-media")),
        [("stream-key".to_owned(), worker.ingest.stream_key_file)]
    );
    assert_eq!(
        room_key_files(deployment(&children, "lobby-chat")),
        [(
            "chat-signing-key".to_owned(),
            worker.chat.expect("chat").signing_key_file
        )]
    );
}

#[test]
fn media_mounts_nothing_of_the_room_keys_when_the_room_brings_its_stream_key() {
    let children = build(
        &room("ingest: {streamKeySecretRef: {name: my-key, key: key}}"),
        &platform_config(),
    );
    assert_eq!(
        room_key_files(deployment(&children, "lobby-media")),
        Vec::<(String, String)>::new()
    );
}

#[test]
fn worker_pods_get_the_operators_image_pull_secrets() {
    let pulls = |children: &[Child], name: &str| -> Vec<String> {
        pod_spec(deployment(children, name))
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .collect()
    };
    let config = OperatorConfig {
        image_pull_secrets: vec!["regcred".to_owned(), "mirror".to_owned()],
        ..platform_config()
    };
    let children = build(&room("{}"), &config);
    for name in ["lobby-media", "lobby-chat"] {
        assert_eq!(pulls(&children, name), ["regcred", "mirror"], "{name}");
    }
    let children = build(&room("{}"), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        assert!(
            pod_spec(deployment(&children, name))
                .image_pull_secrets
                .is_none(),
            "{name}: none configured, none set"
        );
    }
}
