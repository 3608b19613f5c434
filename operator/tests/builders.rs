//! Builder tests: rooms from inline YAML go through `validate` and `build_children`, and the
//! children are checked for what matters (ownership, selectors, security, routing, secrets,
//! recording, determinism). Whole child lists of the example rooms are pinned by insta
//! snapshots under `tests/snapshots/` (`INSTA_UPDATE=always cargo test -p roomcast-operator
//! --test builders` regenerates them; review the diff).

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Container, PodSpec, ResourceRequirements, Secret, Service, Volume},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};
use roomcast_crds::{
    StreamRoom, StreamRoomSpec,
    worker_config::{CONFIG_KEY, WorkerConfig},
};
use roomcast_operator::{
    build::{BuildInputs, Child, build_children, content_hash, worker_config},
    config::OperatorConfig,
    keys::{RoomKeys, resolve_keys, wanted_keys},
    labels,
    validate::{RoomError, ValidRoom, validate},
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const UID: &str = "6d1c4a52-0a3e-4c5e-9d55-3f0c2a7b9e10";
const NAMESPACE: &str = "shows";
const ROOM: &str = "lobby";

/// A whole StreamRoom document, with the uid the API server would have assigned.
fn parse_room(document: &str) -> StreamRoom {
    let mut room: StreamRoom = serde_yaml::from_str(document).expect("room YAML parses");
    room.metadata.uid = Some(UID.to_owned());
    room
}

/// Room `shows/lobby` with the given `spec` (YAML).
fn room(spec: &str) -> StreamRoom {
    let spec: StreamRoomSpec = serde_yaml::from_str(spec).expect("spec YAML parses");
    let mut room = StreamRoom::new(ROOM, spec);
    room.metadata.namespace = Some(NAMESPACE.to_owned());
    room.metadata.uid = Some(UID.to_owned());
    room
}

/// An operator with no platform defaults at all (no host, no Redis, no bucket).
fn bare_config() -> OperatorConfig {
    OperatorConfig {
        media_image: "ghcr.io/roomcast/roomcast:test".to_owned(),
        chat_image: "ghcr.io/roomcast/roomcast:test".to_owned(),
        playback_scheme: "https".to_owned(),
        operator_namespace: "roomcast-system".to_owned(),
        ..OperatorConfig::default()
    }
}

/// The operator of the snapshots: a default playback host and Redis.
fn platform_config() -> OperatorConfig {
    OperatorConfig {
        playback_host: Some("live.example.com".to_owned()),
        redis_url: Some("redis://redis.roomcast-system:6379".to_owned()),
        ..bare_config()
    }
}

fn valid(room: &StreamRoom, config: &OperatorConfig) -> ValidRoom {
    validate(room, config).expect("room is valid")
}

/// Keys of a new room: fixed, numbered values instead of random ones.
fn fixed_keys(valid: &ValidRoom) -> RoomKeys {
    let mut n = 0;
    resolve_keys(
        None,
        &wanted_keys(valid.spec.ingest.stream_key_secret_ref.is_some()),
        &valid.rotation_requests,
        || {
            n += 1;
            format!("fixed-key-{n}")
        },
    )
}

fn inputs_for(valid: &ValidRoom) -> BuildInputs {
    BuildInputs {
        keys: fixed_keys(valid),
        ..BuildInputs::default()
    }
}

/// Children of `room` under `config`, with freshly generated (fixed) keys.
fn build(room: &StreamRoom, config: &OperatorConfig) -> Vec<Child> {
    let valid = valid(room, config);
    build_children(&valid, config, &inputs_for(&valid)).expect("children build")
}

fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> Option<&'a Child> {
    children
        .iter()
        .find(|c| c.kind() == kind && c.name() == name)
}

fn names_of(children: &[Child], kind: &str) -> Vec<String> {
    children
        .iter()
        .filter(|c| c.kind() == kind)
        .map(|c| c.name().to_owned())
        .collect()
}

/// `fn name(children, child_name) -> &Kind`: the child of that kind and name, or a panic
/// naming what is missing.
macro_rules! child_accessor {
    ($($name:ident => $variant:ident: $ty:ty),* $(,)?) => {$(
        fn $name<'a>(children: &'a [Child], name: &str) -> &'a $ty {
            match find(children, stringify!($variant), name) {
                Some(Child::$variant(object)) => object,
                _ => panic!("no {} {name}", stringify!($variant)),
            }
        }
    )*};
}

child_accessor! {
    deployment => Deployment: Deployment,
    service => Service: Service,
    secret => Secret: Secret,
    config_map => ConfigMap: ConfigMap,
    ingress => Ingress: Ingress,
    role => Role: Role,
    role_binding => RoleBinding: RoleBinding,
    pdb => PodDisruptionBudget: PodDisruptionBudget,
    network_policy => NetworkPolicy: NetworkPolicy,
}

fn service_account_annotations(children: &[Child]) -> Option<BTreeMap<String, String>> {
    match find(children, "ServiceAccount", "lobby-worker") {
        Some(Child::ServiceAccount(sa)) => sa
            .metadata
            .annotations
            .clone()
            .map(|mut a| {
                a.remove(labels::APPLIED_HASH);
                a
            })
            .filter(|a| !a.is_empty()),
        _ => panic!("no ServiceAccount lobby-worker"),
    }
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod spec")
}

fn pod_labels(deployment: &Deployment) -> &BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .expect("pod template has labels")
}

fn pod_annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn container(deployment: &Deployment) -> &Container {
    let containers = &pod_spec(deployment).containers;
    assert_eq!(containers.len(), 1, "one worker container per pod");
    &containers[0]
}

fn volume<'a>(deployment: &'a Deployment, name: &str) -> Option<&'a Volume> {
    pod_spec(deployment)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
}

/// `(mount path, read-only)` of the volume `name` in the worker container.
fn mount(deployment: &Deployment, name: &str) -> Option<(String, bool)> {
    container(deployment)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .map(|m| (m.mount_path.clone(), m.read_only == Some(true)))
}

fn volume_names(deployment: &Deployment) -> Vec<String> {
    pod_spec(deployment)
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect()
}

fn worker_config_of(children: &[Child]) -> WorkerConfig {
    let text = config_map(children, "lobby-config")
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .expect("ConfigMap holds the worker config");
    WorkerConfig::from_yaml(text).expect("worker config parses back")
}

fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                String::from_utf8(v.0.clone()).expect("UTF-8 secret value"),
            )
        })
        .collect()
}

fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// A room that uses every optional reference: own stream key, recording with its own bucket
/// and credentials, host, class, TLS and a CDN origin secret.
const FULL_SPEC: &str = r#"
ingest:
  streamKeySecretRef: {name: lobby-key, key: primary}
recording:
  enabled: true
  spoolSizeMib: 512
  s3:
    bucket: vods
    prefix: rooms/
    region: eu-west-1
    credentialsSecretRef: {name: s3-creds}
    serviceAccountAnnotations:
      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/roomcast-vods
chat:
  replicas: 3
playback:
  host: tv.example.org
  ingressClassName: nginx
  tlsSecretRef: {name: tv-tls}
  cdn:
    originSecretRef: {name: cdn-origin}
    playlistMaxAgeSeconds: 2
    segmentMaxAgeSeconds: 3600
"#;

// ---------------------------------------------------------------------------------------------
// Every child
// ---------------------------------------------------------------------------------------------

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
            ("Service", "lobby-rtmp"),
            ("Service", "lobby-hls"),
            ("Deployment", "lobby-media"),
            ("Service", "lobby-chat"),
            ("Deployment", "lobby-chat"),
            ("PodDisruptionBudget", "lobby-chat"),
            ("Ingress", "lobby"),
            ("Ingress", "lobby-chat"),
            ("NetworkPolicy", "lobby"),
        ]
    );
}

/// Children of a room that uses every optional Secret copy too (default S3 credentials and
/// MongoDB), so ownership and labels are checked on every kind the operator can make.
fn children_of_every_kind() -> Vec<Child> {
    let config = OperatorConfig {
        mongodb_secret: Some("roomcast-mongodb".to_owned()),
        s3: roomcast_operator::config::DefaultS3 {
            bucket: Some("platform-vods".to_owned()),
            credentials_secret: Some("roomcast-s3".to_owned()),
            ..Default::default()
        },
        ..platform_config()
    };
    let room = room("recording: {enabled: true}\nplayback: {tlsSecretRef: {name: tls}}");
    let valid = valid(&room, &config);
    let inputs = BuildInputs {
        default_s3_credentials: Some(BTreeMap::from([(
            "AWS_ACCESS_KEY_ID".to_owned(),
            ByteString(b"AKIA".to_vec()),
        )])),
        default_mongodb: Some(BTreeMap::from([(
            "uri".to_owned(),
            ByteString(b"mongodb://db".to_vec()),
        )])),
        ..inputs_for(&valid)
    };
    let children = build_children(&valid, &config, &inputs).expect("children build");
    let kinds: std::collections::BTreeSet<&str> = children.iter().map(Child::kind).collect();
    assert_eq!(kinds.len(), 10, "every child kind is present: {kinds:?}");
    assert!(find(&children, "Secret", "lobby-s3").is_some());
    assert!(find(&children, "Secret", "lobby-mongodb").is_some());
    children
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
            ("Deployment" | "Service", "lobby-media" | "lobby-rtmp" | "lobby-hls") => "media",
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

// ---------------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------------

#[test]
fn services_select_the_pods_of_the_deployment_they_front() {
    let children = build(&room("{}"), &platform_config());
    let media = pod_labels(deployment(&children, "lobby-media"));
    let chat = pod_labels(deployment(&children, "lobby-chat"));
    for (name, fronted, other) in [
        ("lobby-rtmp", media, chat),
        ("lobby-hls", media, chat),
        ("lobby-chat", chat, media),
    ] {
        let selector = service(&children, name)
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .expect("Service has a selector");
        assert!(!selector.is_empty(), "{name}");
        assert!(
            is_subset(selector, fronted),
            "{name} selector {selector:?} misses its pods {fronted:?}"
        );
        assert!(
            !is_subset(selector, other),
            "{name} selector {selector:?} also selects {other:?}"
        );
    }
}

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
fn chat_pdb_selects_the_chat_pods_only() {
    let children = build(&room("chat: {replicas: 3}"), &platform_config());
    let pdb = pdb(&children, "lobby-chat");
    let spec = pdb.spec.as_ref().expect("PDB spec");
    let selector = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .expect("PDB selector");
    assert!(is_subset(
        selector,
        pod_labels(deployment(&children, "lobby-chat"))
    ));
    assert!(!is_subset(
        selector,
        pod_labels(deployment(&children, "lobby-media"))
    ));
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

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
    let valid = valid(&room, &config);
    let inputs = BuildInputs {
        default_mongodb: Some(
            [(
                "uri".to_owned(),
                ByteString(b"mongodb://mongo:27017/roomcast".to_vec()),
            )]
            .into_iter()
            .collect(),
        ),
        ..inputs_for(&valid)
    };
    let children = build_children(&valid, &config, &inputs).expect("children build");
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
    assert_eq!(chat.redis_url, config.redis_url);
    assert!(!valid.chat_scaled_down());
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
    assert_eq!(chat.redis_url, None);
    assert!(valid(&room, &config).chat_scaled_down());
}

#[test]
fn single_chat_replica_does_not_use_redis_even_when_configured() {
    let children = build(&room("chat: {replicas: 1}"), &platform_config());
    let chat = worker_config_of(&children).chat.expect("chat config");
    assert_eq!(chat.redis_url, None);
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
            "keys",
            "tmp",
            "data",
            "stream-key",
            "origin-secret",
            "s3-credentials",
            "spool"
        ]
    );
}

#[test]
fn rtmp_service_is_exposed_as_the_operator_chooses_and_the_http_services_stay_internal() {
    let config = OperatorConfig {
        ingest_service_type: roomcast_operator::config::IngestServiceType::NodePort,
        ..platform_config()
    };
    let children = build(&room("{}"), &config);
    let service_type = |name: &str| {
        service(&children, name)
            .spec
            .as_ref()
            .and_then(|s| s.type_.clone())
    };
    assert_eq!(service_type("lobby-rtmp").as_deref(), Some("NodePort"));
    assert_eq!(service_type("lobby-hls").as_deref(), Some("ClusterIP"));
    assert_eq!(service_type("lobby-chat").as_deref(), Some("ClusterIP"));

    let default_type = build(&room("{}"), &platform_config());
    assert_eq!(
        service(&default_type, "lobby-rtmp")
            .spec
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
}

#[test]
fn service_ports_target_named_container_ports_that_exist() {
    let children = build(&room("{}"), &platform_config());
    for (service_name, deployment_name, port, target) in [
        ("lobby-rtmp", "lobby-media", 1935, "rtmp"),
        ("lobby-hls", "lobby-media", 80, "http"),
        ("lobby-chat", "lobby-chat", 80, "http"),
    ] {
        let ports = service(&children, service_name)
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        assert_eq!(ports.len(), 1, "{service_name}");
        assert_eq!(ports[0].port, port, "{service_name}");
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String(target.to_owned())),
            "{service_name}"
        );
        assert!(
            container(deployment(&children, deployment_name))
                .ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some(target)),
            "{deployment_name} has no port named {target}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ingress
// ---------------------------------------------------------------------------------------------

/// `(host, path, pathType, service, service port name)` of the only rule of an Ingress.
fn only_route(ingress: &Ingress) -> (String, String, String, String, String) {
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .expect("rules");
    assert_eq!(rules.len(), 1);
    let paths = &rules[0].http.as_ref().expect("http rule").paths;
    assert_eq!(paths.len(), 1);
    let backend = paths[0].backend.service.as_ref().expect("service backend");
    (
        rules[0].host.clone().unwrap_or_default(),
        paths[0].path.clone().unwrap_or_default(),
        paths[0].path_type.clone(),
        backend.name.clone(),
        backend
            .port
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_default(),
    )
}

fn ingress_annotation<'a>(ingress: &'a Ingress, key: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn tls_of(ingress: &Ingress) -> Option<Vec<(Vec<String>, String)>> {
    ingress.spec.as_ref()?.tls.as_ref().map(|tls| {
        tls.iter()
            .map(|t| {
                (
                    t.hosts.clone().unwrap_or_default(),
                    t.secret_name.clone().unwrap_or_default(),
                )
            })
            .collect()
    })
}

fn class_of(ingress: &Ingress) -> Option<&str> {
    ingress.spec.as_ref()?.ingress_class_name.as_deref()
}

#[test]
fn media_ingress_routes_the_room_prefix_to_the_hls_service() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let media = ingress(&children, "lobby");
    assert_eq!(
        only_route(media),
        (
            "tv.example.org".to_owned(),
            "/shows/lobby".to_owned(),
            "Prefix".to_owned(),
            "lobby-hls".to_owned(),
            "http".to_owned(),
        )
    );
    assert_eq!(class_of(media), Some("nginx"));
    assert_eq!(
        tls_of(media),
        Some(vec![(
            vec!["tv.example.org".to_owned()],
            "tv-tls".to_owned()
        )])
    );
    // The backend port name exists on the Service it points at.
    let hls = service(&children, "lobby-hls");
    assert!(
        hls.spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .any(|p| p.name.as_deref() == Some("http"))
    );
}

#[test]
fn chat_ingress_routes_the_chat_path_to_the_chat_service() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let chat = ingress(&children, "lobby-chat");
    assert_eq!(
        only_route(chat),
        (
            "tv.example.org".to_owned(),
            "/shows/lobby/chat".to_owned(),
            "Prefix".to_owned(),
            "lobby-chat".to_owned(),
            "http".to_owned(),
        )
    );
    assert_eq!(class_of(chat), Some("nginx"));
    assert_eq!(
        tls_of(chat),
        Some(vec![(
            vec!["tv.example.org".to_owned()],
            "tv-tls".to_owned()
        )])
    );
}

#[test]
fn only_the_chat_ingress_is_sticky_with_long_timeouts() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let chat = ingress(&children, "lobby-chat");
    let media = ingress(&children, "lobby");
    let nginx = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");

    assert_eq!(ingress_annotation(chat, &nginx("affinity")), Some("cookie"));
    assert_eq!(
        ingress_annotation(chat, &nginx("session-cookie-path")),
        Some("/shows/lobby/chat")
    );
    assert_eq!(
        ingress_annotation(chat, &nginx("proxy-read-timeout")),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(chat, &nginx("proxy-send-timeout")),
        Some("3600")
    );

    assert_eq!(ingress_annotation(media, &nginx("affinity")), None);
    assert_eq!(
        ingress_annotation(media, &nginx("session-cookie-name")),
        None
    );
    assert_ne!(
        ingress_annotation(media, &nginx("proxy-read-timeout")),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(media, &nginx("proxy-send-timeout")),
        None
    );
}

#[test]
fn cdn_max_age_annotations_follow_the_playback_cdn_spec() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let media = ingress(&children, "lobby");
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/playlist-max-age-seconds"),
        Some("2")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/segment-max-age-seconds"),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/origin-protected"),
        Some("true")
    );

    let defaults = build(&room("{}"), &platform_config());
    let media = ingress(&defaults, "lobby");
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/playlist-max-age-seconds"),
        Some("1")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/segment-max-age-seconds"),
        Some("86400")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/origin-protected"),
        Some("false")
    );
}

#[test]
fn room_without_any_host_gets_no_ingress() {
    let children = build(&room("{}"), &bare_config());
    assert!(names_of(&children, "Ingress").is_empty());
    // Everything else is still there.
    assert!(find(&children, "Service", "lobby-hls").is_some());
    assert!(find(&children, "Deployment", "lobby-chat").is_some());
}

#[test]
fn operator_default_host_and_class_apply_when_the_room_sets_none() {
    let config = OperatorConfig {
        playback_host: Some("streams.example.net".to_owned()),
        ingress_class: Some("public".to_owned()),
        ..bare_config()
    };
    let children = build(&room("{}"), &config);
    assert_eq!(names_of(&children, "Ingress"), ["lobby", "lobby-chat"]);
    for name in ["lobby", "lobby-chat"] {
        let i = ingress(&children, name);
        assert_eq!(only_route(i).0, "streams.example.net", "{name}");
        assert_eq!(class_of(i), Some("public"), "{name}");
        assert_eq!(tls_of(i), None, "{name}: no tlsSecretRef, no TLS");
    }
}

#[test]
fn room_host_and_class_beat_the_operator_defaults() {
    let config = OperatorConfig {
        playback_host: Some("streams.example.net".to_owned()),
        ingress_class: Some("public".to_owned()),
        ..bare_config()
    };
    let children = build(
        &room("playback: {host: tv.example.org, ingressClassName: nginx}"),
        &config,
    );
    for name in ["lobby", "lobby-chat"] {
        let i = ingress(&children, name);
        assert_eq!(only_route(i).0, "tv.example.org", "{name}");
        assert_eq!(class_of(i), Some("nginx"), "{name}");
    }
}

#[test]
fn ingress_without_any_class_leaves_the_class_to_the_cluster_default() {
    let children = build(&room("playback: {host: tv.example.org}"), &bare_config());
    assert_eq!(class_of(ingress(&children, "lobby")), None);
}

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

fn default_s3_config() -> OperatorConfig {
    OperatorConfig {
        s3: roomcast_operator::config::DefaultS3 {
            bucket: Some("platform-vods".to_owned()),
            prefix: Some("live/".to_owned()),
            region: Some("us-east-2".to_owned()),
            endpoint: Some("https://minio.storage:9000".to_owned()),
            force_path_style: None,
            credentials_secret: Some("roomcast-s3".to_owned()),
        },
        ..platform_config()
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
    let secret = volume(media, "s3-credentials")
        .and_then(|v| v.secret.as_ref())
        .expect("s3-credentials is a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("s3-creds"));
    assert_eq!(
        mount(media, "s3-credentials"),
        Some(("/etc/roomcast/s3".to_owned(), true))
    );
    // Only the media worker records.
    assert!(volume(deployment(&children, "lobby-chat"), "s3-credentials").is_none());
    // The room's own Secret is used as is: nothing copied.
    assert!(find(&children, "Secret", "lobby-s3").is_none());

    let recording = worker_config_of(&children)
        .recording
        .expect("recording config");
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
    let room = room("recording: {enabled: true}");
    let valid = valid(&room, &config);
    let default_credentials = BTreeMap::from([
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            ByteString(b"AKIAEXAMPLE".to_vec()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            ByteString(b"wJalrXUtnFEMI".to_vec()),
        ),
    ]);
    let inputs = BuildInputs {
        default_s3_credentials: Some(default_credentials.clone()),
        ..inputs_for(&valid)
    };
    let children = build_children(&valid, &config, &inputs).expect("children build");

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
        Some(("/etc/roomcast/s3".to_owned(), true))
    );

    let recording = worker_config_of(&children)
        .recording
        .expect("recording config");
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
    let room = room("recording: {enabled: true}");
    let valid = valid(&room, &config);
    let inputs = BuildInputs {
        default_s3_credentials: Some(BTreeMap::new()),
        ..inputs_for(&valid)
    };
    let children = build_children(&valid, &config, &inputs).expect("children build");
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
    let valid = valid(&room, &config);
    // Even if the controller had passed the default Secret along, it is not used.
    let inputs = BuildInputs {
        default_s3_credentials: Some(BTreeMap::new()),
        ..inputs_for(&valid)
    };
    let children = build_children(&valid, &config, &inputs).expect("children build");
    assert!(find(&children, "Secret", "lobby-s3").is_none());
    let recording = worker_config_of(&children)
        .recording
        .expect("recording config");
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
    let recording = worker_config_of(&children)
        .recording
        .expect("recording config");
    assert_eq!(recording.credentials_dir, None);
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

#[test]
fn recording_spool_is_an_empty_dir_limited_to_spool_size_mib() {
    let children = build(
        &room("recording: {enabled: true, spoolSizeMib: 512, s3: {bucket: vods}}"),
        &platform_config(),
    );
    let media = deployment(&children, "lobby-media");
    let spool = volume(media, "spool")
        .and_then(|v| v.empty_dir.as_ref())
        .expect("spool is an emptyDir");
    assert_eq!(spool.size_limit, Some(Quantity("512Mi".to_owned())));
    assert_eq!(
        mount(media, "spool"),
        Some(("/var/spool/roomcast".to_owned(), false)),
        "the spool is writable"
    );
    let recording = worker_config_of(&children)
        .recording
        .expect("recording config");
    assert_eq!(recording.spool_dir, "/var/spool/roomcast");
    assert_eq!(recording.spool_size_mib, 512);
}

#[test]
fn recording_spool_defaults_to_two_gibibytes() {
    let children = build(
        &room("recording: {enabled: true, s3: {bucket: vods}}"),
        &platform_config(),
    );
    let spool = volume(deployment(&children, "lobby-media"), "spool")
        .and_then(|v| v.empty_dir.as_ref())
        .expect("spool is an emptyDir");
    assert_eq!(spool.size_limit, Some(Quantity("2048Mi".to_owned())));
}

#[test]
fn service_account_carries_the_s3_service_account_annotations() {
    let children = build(&room(FULL_SPEC), &platform_config());
    assert_eq!(
        service_account_annotations(&children),
        Some(string_map(&[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::123456789012:role/roomcast-vods"
        )]))
    );
}

#[test]
fn service_account_has_no_annotations_when_recording_is_off() {
    let spec = FULL_SPEC.replace("enabled: true", "enabled: false");
    let children = build(&room(&spec), &platform_config());
    assert_eq!(service_account_annotations(&children), None);
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

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
        let secret = volume(d, "keys")
            .and_then(|v| v.secret.as_ref())
            .expect("keys Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("lobby-keys"), "{name}");
        assert_eq!(
            mount(d, "keys"),
            Some(("/etc/roomcast/keys".to_owned(), true)),
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
    let source = volume(media, "stream-key")
        .and_then(|v| v.secret.as_ref())
        .expect("stream-key Secret volume");
    assert_eq!(source.secret_name.as_deref(), Some("my-key"));
    let items: Vec<(&str, &str)> = source
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(items, [("primary", "stream-key")]);
    assert_eq!(
        mount(media, "stream-key"),
        Some(("/etc/roomcast/stream-key".to_owned(), true))
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
    let source = volume(deployment(&children, "lobby-media"), "stream-key")
        .and_then(|v| v.secret.as_ref())
        .expect("stream-key Secret volume");
    let items: Vec<(&str, &str)> = source
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(items, [("stream-key", "stream-key")]);
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

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// `(apiGroups, resources, resourceNames, verbs)` of a PolicyRule.
type RuleSummary = (Vec<String>, Vec<String>, Option<Vec<String>>, Vec<String>);

#[test]
fn worker_role_only_reads_and_patches_its_own_room() {
    let children = build(&room("{}"), &platform_config());
    let rules = role(&children, "lobby-worker")
        .rules
        .as_ref()
        .expect("rules");
    let summary: Vec<RuleSummary> = rules
        .iter()
        .map(|r| {
            (
                r.api_groups.clone().unwrap_or_default(),
                r.resources.clone().unwrap_or_default(),
                r.resource_names.clone(),
                r.verbs.clone(),
            )
        })
        .collect();
    let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        [
            (
                strings(&["roomcast.dev"]),
                strings(&["streamrooms/status"]),
                Some(strings(&["lobby"])),
                strings(&["get", "patch"]),
            ),
            (
                strings(&["roomcast.dev"]),
                strings(&["streamrooms"]),
                Some(strings(&["lobby"])),
                strings(&["get"]),
            ),
            (
                strings(&["events.k8s.io"]),
                strings(&["events"]),
                None,
                strings(&["create", "patch"]),
            ),
        ]
    );
    for rule in rules {
        assert_eq!(rule.non_resource_urls, None);
        assert!(!rule.verbs.iter().any(|v| v == "*"));
    }
}

#[test]
fn role_binding_binds_the_worker_service_account_to_the_worker_role() {
    let children = build(&room("{}"), &platform_config());
    let binding = role_binding(&children, "lobby-worker");
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "lobby-worker");
    let subjects: Vec<(&str, &str, Option<&str>)> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
        .collect();
    assert_eq!(
        subjects,
        [("ServiceAccount", "lobby-worker", Some(NAMESPACE))]
    );
}

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

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
        container(deployment(&children, "lobby-media")).resources,
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "3"), ("memory", "3Gi")])),
            limits: Some(quantities(&[("memory", "4Gi")])),
            ..ResourceRequirements::default()
        })
    );
    assert_eq!(
        container(deployment(&children, "lobby-chat")).resources,
        Some(requirements("50m", "64Mi"))
    );
}

#[test]
fn operator_default_resources_beat_the_builtin_fallback() {
    let children = build(&room("{}"), &config_with_default_resources());
    assert_eq!(
        container(deployment(&children, "lobby-media")).resources,
        Some(requirements("1500m", "768Mi"))
    );
    assert_eq!(
        container(deployment(&children, "lobby-chat")).resources,
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
        container(deployment(&children, "lobby-media")).resources,
        Some(requirements("3", "3Gi"))
    );
    assert_eq!(
        container(deployment(&children, "lobby-chat")).resources,
        Some(requirements("200m", "256Mi"))
    );
}

#[test]
fn builtin_fallback_resources_apply_when_nobody_sets_any() {
    let children = build(&room("{}"), &platform_config());
    assert_eq!(
        container(deployment(&children, "lobby-media")).resources,
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "1"), ("memory", "512Mi")])),
            limits: Some(quantities(&[("memory", "2Gi")])),
            ..ResourceRequirements::default()
        })
    );
    assert_eq!(
        container(deployment(&children, "lobby-chat")).resources,
        Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "512Mi")])),
            ..ResourceRequirements::default()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism and rollouts
// ---------------------------------------------------------------------------------------------

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
        key("NetworkPolicy", "lobby"),
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

// ---------------------------------------------------------------------------------------------
// Chat disabled
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Worker config
// ---------------------------------------------------------------------------------------------

#[test]
fn worker_config_in_the_config_map_parses_back_to_what_was_built() {
    let config = platform_config();
    let room = room(FULL_SPEC);
    let children = build(&room, &config);
    let parsed = worker_config_of(&children);
    assert_eq!(parsed, worker_config(&valid(&room, &config), &config));
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

#[test]
fn origin_secret_is_mounted_in_the_media_pod() {
    let children = build(
        &room("playback: {cdn: {originSecretRef: {name: cdn-origin}}}"),
        &platform_config(),
    );
    let media = deployment(&children, "lobby-media");
    let source = volume(media, "origin-secret")
        .and_then(|v| v.secret.as_ref())
        .expect("origin-secret volume");
    assert_eq!(source.secret_name.as_deref(), Some("cdn-origin"));
    let items: Vec<(&str, &str)> = source
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(items, [("origin-secret", "origin-secret")]);
    assert_eq!(
        mount(media, "origin-secret"),
        Some(("/etc/roomcast/origin".to_owned(), true))
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
            Some(("/etc/roomcast/mongodb".to_owned(), true)),
            "{name}"
        );
    }
    assert_eq!(
        worker_config_of(&children).mongodb_uri_file.as_deref(),
        Some("/etc/roomcast/mongodb/uri")
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

// ---------------------------------------------------------------------------------------------
// NetworkPolicy
// ---------------------------------------------------------------------------------------------

#[test]
fn network_policy_selects_the_room_pods_and_allows_only_the_serving_ports() {
    let children = build(&room("{}"), &platform_config());
    let spec = network_policy(&children, "lobby")
        .spec
        .as_ref()
        .expect("NetworkPolicy spec");
    let selector = spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .expect("pod selector");
    for name in ["lobby-media", "lobby-chat"] {
        assert!(
            is_subset(selector, pod_labels(deployment(&children, name))),
            "{name} pods are not selected"
        );
    }
    assert!(
        !is_subset(
            selector,
            &string_map(&[
                (labels::NAME, "roomcast"),
                (labels::ROOM, "other-room"),
                (labels::COMPONENT, "media"),
            ])
        ),
        "another room's pods must not be selected"
    );

    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let rules = spec.ingress.as_ref().expect("ingress rules");
    assert_eq!(rules.len(), 1);
    let ports: Vec<(Option<IntOrString>, Option<&str>)> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port.clone(), p.protocol.as_deref()))
        .collect();
    assert_eq!(
        ports,
        [
            (Some(IntOrString::Int(1935)), Some("TCP")),
            (Some(IntOrString::Int(8080)), Some("TCP")),
            (Some(IntOrString::Int(9090)), Some("TCP")),
        ]
    );
}

#[test]
fn every_container_port_is_allowed_by_the_network_policy() {
    let children = build(&room("{}"), &platform_config());
    let allowed: Vec<i32> = network_policy(&children, "lobby")
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .flat_map(|r| r.ports.iter().flatten())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect();
    for name in ["lobby-media", "lobby-chat"] {
        for port in container(deployment(&children, name))
            .ports
            .iter()
            .flatten()
        {
            assert!(
                allowed.contains(&port.container_port),
                "{name} port {} is blocked",
                port.container_port
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// render
// ---------------------------------------------------------------------------------------------

#[test]
fn render_prints_every_child_with_placeholder_keys() {
    let output = roomcast_operator::render::render(
        include_str!("../../tests/fixtures/rooms/minimal.yaml"),
        &platform_config(),
    )
    .expect("renders");
    let documents: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&output)
        .map(|d| serde::Deserialize::deserialize(d).expect("each document is YAML"))
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default())
        .collect();
    let expected = build(
        &parse_room(include_str!("../../tests/fixtures/rooms/minimal.yaml")),
        &platform_config(),
    );
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

// ---------------------------------------------------------------------------------------------
// Snapshots of the example rooms
// ---------------------------------------------------------------------------------------------

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
    insta::assert_yaml_snapshot!(snapshot_of(include_str!(
        "../../tests/fixtures/rooms/full.yaml"
    )));
}

#[test]
fn minimal_room_children_snapshot() {
    insta::assert_yaml_snapshot!(snapshot_of(include_str!(
        "../../tests/fixtures/rooms/minimal.yaml"
    )));
}
