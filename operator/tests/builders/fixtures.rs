//! Shared by the builder tests: rooms from inline YAML, the operator configurations, fixed keys,
//! and accessors that find a child or a part of a pod.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Container, PodSpec, Secret, SecretVolumeSource, Service, Volume},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::api::resource::Quantity,
};
use roomcast_crds::{
    StreamRoom, StreamRoomSpec,
    worker_config::{CONFIG_KEY, RecordingConfig, WorkerConfig},
};
use roomcast_operator::{
    build::{BuildInputs, Child, ChildKind, build_children},
    config::OperatorConfig,
    keys::{RoomKeys, resolve_keys, wanted_keys},
    labels,
    validate::{ValidRoom, validate},
};

pub const UID: &str = "6d1c4a52-0a3e-4c5e-9d55-3f0c2a7b9e10";
pub const NAMESPACE: &str = "shows";
pub const ROOM: &str = "lobby";

/// A whole StreamRoom document, with the uid the API server would have assigned.
pub fn parse_room(document: &str) -> StreamRoom {
    let mut room: StreamRoom = serde_yaml::from_str(document).expect("room YAML parses");
    room.metadata.uid = Some(UID.to_owned());
    room
}

/// Room `shows/lobby` with the given `spec` (YAML).
pub fn room(spec: &str) -> StreamRoom {
    let spec: StreamRoomSpec = serde_yaml::from_str(spec).expect("spec YAML parses");
    let mut room = StreamRoom::new(ROOM, spec);
    room.metadata.namespace = Some(NAMESPACE.to_owned());
    room.metadata.uid = Some(UID.to_owned());
    room
}

/// An operator with no platform defaults at all (no host, no Redis, no bucket).
pub fn bare_config() -> OperatorConfig {
    OperatorConfig {
        media_image: "ghcr.io/roomcast/roomcast:test".to_owned(),
        chat_image: "ghcr.io/roomcast/roomcast:test".to_owned(),
        playback_scheme: "https".to_owned(),
        operator_namespace: "roomcast-system".to_owned(),
        ..OperatorConfig::default()
    }
}

/// The operator of the snapshots: a default playback host and Redis, shared with rooms.
pub fn platform_config() -> OperatorConfig {
    OperatorConfig {
        playback_host: Some("live.example.com".to_owned()),
        redis_secret: Some("roomcast-redis".to_owned()),
        share_default_credentials: true,
        ..bare_config()
    }
}

/// The platform of the snapshots with the shared ingest gateway on.
pub fn gateway_config() -> OperatorConfig {
    let mut config = platform_config();
    config.gateway.url = Some("rtmps://ingest.example.com/live".to_owned());
    config.gateway.pod_labels = labels::MatchLabels::parse(
        "app.kubernetes.io/component=ingest-gateway,app.kubernetes.io/instance=roomcast",
    )
    .expect("labels parse");
    config
}

pub fn valid(room: &StreamRoom, config: &OperatorConfig) -> ValidRoom {
    validate(room, config).expect("room is valid")
}

/// Keys of a new room: fixed, numbered values instead of random ones.
pub fn fixed_keys(valid: &ValidRoom) -> RoomKeys {
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

pub fn inputs_for(valid: &ValidRoom) -> BuildInputs {
    BuildInputs {
        keys: fixed_keys(valid),
        ..BuildInputs::default()
    }
}

/// Children of `room` under `config`, with freshly generated (fixed) keys.
pub fn build(room: &StreamRoom, config: &OperatorConfig) -> Vec<Child> {
    build_with(room, config, |inputs| inputs)
}

/// Children of `room` under `config`, with fixed keys and what `inputs` adds to them (the
/// copies of the operator's default Secrets the controller would pass along).
pub fn build_with(
    room: &StreamRoom,
    config: &OperatorConfig,
    inputs: impl FnOnce(BuildInputs) -> BuildInputs,
) -> Vec<Child> {
    let valid = valid(room, config);
    build_children(&valid, config, &inputs(inputs_for(&valid))).expect("children build")
}

/// Secret data from UTF-8 pairs.
pub fn secret_bytes(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

pub fn find<'a>(children: &'a [Child], kind: &str, name: &str) -> Option<&'a Child> {
    children
        .iter()
        .find(|c| c.kind() == kind && c.name() == name)
}

pub fn names_of(children: &[Child], kind: &str) -> Vec<String> {
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
        pub fn $name<'a>(children: &'a [Child], name: &str) -> &'a $ty {
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

pub fn service_account_annotations(children: &[Child]) -> Option<BTreeMap<String, String>> {
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

pub fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod spec")
}

pub fn pod_labels(deployment: &Deployment) -> &BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .expect("pod template has labels")
}

pub fn pod_annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
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

pub fn container(deployment: &Deployment) -> &Container {
    let containers = &pod_spec(deployment).containers;
    assert_eq!(containers.len(), 1, "one worker container per pod");
    &containers[0]
}

pub fn volume<'a>(deployment: &'a Deployment, name: &str) -> Option<&'a Volume> {
    pod_spec(deployment)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
}

/// The Secret behind the volume `name`, or a panic naming it.
pub fn secret_volume<'a>(deployment: &'a Deployment, name: &str) -> &'a SecretVolumeSource {
    volume(deployment, name)
        .and_then(|v| v.secret.as_ref())
        .unwrap_or_else(|| panic!("no Secret volume {name}"))
}

/// `(key, path)` of the items a Secret volume projects.
pub fn items_of(source: &SecretVolumeSource) -> Vec<(&str, &str)> {
    source
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect()
}

/// Size limit of the emptyDir volume `name`, or a panic if it is not one.
pub fn empty_dir_limit(deployment: &Deployment, name: &str) -> Option<Quantity> {
    volume(deployment, name)
        .and_then(|v| v.empty_dir.as_ref())
        .unwrap_or_else(|| panic!("{name} is not an emptyDir"))
        .size_limit
        .clone()
}

/// What [`mount`] says of a read-only mount at `path`.
pub fn read_only_at(path: &str) -> Option<(String, bool)> {
    Some((path.to_owned(), true))
}

/// `(mount path, read-only)` of the volume `name` in the worker container.
pub fn mount(deployment: &Deployment, name: &str) -> Option<(String, bool)> {
    container(deployment)
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .map(|m| (m.mount_path.clone(), m.read_only == Some(true)))
}

pub fn volume_names(deployment: &Deployment) -> Vec<String> {
    pod_spec(deployment)
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect()
}

pub fn worker_config_of(children: &[Child]) -> WorkerConfig {
    let text = config_map(children, "lobby-config")
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .expect("ConfigMap holds the worker config");
    WorkerConfig::from_yaml(text).expect("worker config parses back")
}

/// The recording part of the worker config, or a panic.
pub fn recording_of(children: &[Child]) -> RecordingConfig {
    worker_config_of(children)
        .recording
        .expect("recording config")
}

pub fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
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

pub fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

pub fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// A room that uses every optional reference: own stream key, recording with its own bucket
/// and credentials, host, class, TLS and a CDN origin secret.
pub const FULL_SPEC: &str = r#"
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

/// Children of a room that uses every optional Secret copy too (default S3 credentials,
/// MongoDB and Redis), so ownership and labels are checked on every kind the operator can make.
pub fn children_of_every_kind() -> Vec<Child> {
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
    let children = build_with(&room, &config, |inputs| BuildInputs {
        default_s3_credentials: Some(secret_bytes(&[("AWS_ACCESS_KEY_ID", "AKIA")])),
        default_mongodb: Some(secret_bytes(&[("uri", "mongodb://db")])),
        default_redis: Some(secret_bytes(&[("url", "redis://:pw@redis:6379")])),
        ..inputs
    });
    let kinds: BTreeSet<ChildKind> = children.iter().map(Child::child_kind).collect();
    assert_eq!(
        kinds,
        ChildKind::ALL.iter().copied().collect(),
        "every child kind is present"
    );
    assert!(find(&children, "Secret", "lobby-s3").is_some());
    assert!(find(&children, "Secret", "lobby-mongodb").is_some());
    assert!(find(&children, "Secret", "lobby-redis").is_some());
    children
}
