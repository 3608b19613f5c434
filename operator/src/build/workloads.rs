//! The two worker Deployments. The media worker is a singleton (a room has one live ingest,
//! so `Recreate`: two pods must never both accept the publisher); chat scales out.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{EnvVar, LocalObjectReference, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use roomcast_crds::worker_config::{
    CHAT_SIGNING_KEY_KEY, CONFIG_DIR, HTTP_PORT, KEYS_DIR, METRICS_PORT, MONGODB_DIR,
    MONGODB_URI_KEY, ORIGIN_SECRET_DIR, ORIGIN_SECRET_KEY, REDIS_DIR, REDIS_URL_KEY, RTMP_PORT,
    S3_CREDENTIALS_DIR, SPOOL_DIR, STREAM_KEY_DIR, STREAM_KEY_KEY,
};

use super::{
    KEYS_SECRET, MONGODB_SECRET, REDIS_SECRET, S3_SECRET,
    pod::{self, Mount},
    rbac::WORKER_SUFFIX,
    secret_name,
};
use crate::{config::OperatorConfig, labels::Component, validate::ValidRoom};

/// The chat worker's variable for its trusted proxies (`roomcast-chat --trusted-proxies`).
pub const CHAT_TRUSTED_PROXIES_ENV: &str = "ROOMCAST_TRUSTED_PROXIES";
/// Pod annotation carrying the ConfigMap's hash: a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "roomcast.dev/config-hash";
const TMP_SIZE_MIB: u32 = 64;
/// Writable state of a worker (`ROOMCAST_DATA_DIR`): the embedded store when no MongoDB is
/// configured. An emptyDir: it lives as long as the pod, which is why several chat replicas
/// need MongoDB.
pub const DATA_DIR: &str = "/var/lib/roomcast";
const DATA_SIZE_MIB: u32 = 1024;

/// One key of a Secret at `<dir>/<key>`: a pod sees only the key it uses, not whatever else
/// the Secret holds.
fn one_key_mount(volume: &str, secret: String, key: &str, dir: &str) -> Mount {
    Mount::secret(
        volume,
        secret,
        Some(vec![(key.to_owned(), key.to_owned())]),
        dir,
    )
}

/// One key of the room's `<room>-keys` Secret, at `KEYS_DIR/<key>`. Each pod mounts only
/// the key it uses: a chat pod that is broken into must not yield the stream key, nor the
/// media pod the key that signs chat tokens.
fn room_key_mount(room: &ValidRoom, key: &str) -> Mount {
    one_key_mount("keys", room.room.child(KEYS_SECRET), key, KEYS_DIR)
}

fn common_mounts(room: &ValidRoom, keys: Option<Mount>) -> Vec<Mount> {
    let mut mounts = vec![Mount::config_map(
        "config",
        room.room.child("config"),
        CONFIG_DIR,
    )];
    mounts.extend(keys);
    mounts.extend([
        Mount::empty_dir("tmp", TMP_SIZE_MIB, "/tmp"),
        Mount::empty_dir("data", DATA_SIZE_MIB, DATA_DIR),
    ]);
    if let Some(source) = &room.mongodb {
        mounts.push(one_key_mount(
            "mongodb",
            secret_name(room, source, MONGODB_SECRET),
            MONGODB_URI_KEY,
            MONGODB_DIR,
        ));
    }
    mounts
}

fn template(
    room: &ValidRoom,
    config: &OperatorConfig,
    component: Component,
    config_hash: &str,
    mut container: k8s_openapi::api::core::v1::Container,
    mounts: Vec<Mount>,
) -> PodTemplateSpec {
    let (volumes, volume_mounts): (Vec<_>, Vec<_>) =
        mounts.into_iter().map(|m| (m.volume, m.mount)).unzip();
    container.volume_mounts = Some(volume_mounts);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(room.room.labels(component)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_owned(),
                config_hash.to_owned(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(room.room.child(WORKER_SUFFIX)),
            image_pull_secrets: (!config.image_pull_secrets.is_empty()).then(|| {
                config
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            security_context: Some(pod::pod_security_context()),
            containers: vec![container],
            volumes: Some(volumes),
            // Give a live session time to finish its segment and close cleanly.
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
    }
}

pub fn build_media_deployment(
    room: &ValidRoom,
    config: &OperatorConfig,
    config_hash: &str,
) -> Deployment {
    let spec = &room.spec;
    // A room that brings its own stream key gets no generated one: nothing of `<room>-keys`
    // is the media worker's then.
    let generated_key = spec
        .ingest
        .stream_key_secret_ref
        .is_none()
        .then(|| room_key_mount(room, STREAM_KEY_KEY));
    let mut mounts = common_mounts(room, generated_key);
    if let Some(key_ref) = &spec.ingest.stream_key_secret_ref {
        mounts.push(Mount::secret(
            "stream-key",
            key_ref.name.clone(),
            Some(vec![(key_ref.key.clone(), STREAM_KEY_KEY.to_owned())]),
            STREAM_KEY_DIR,
        ));
    }
    if let Some(origin) = &spec.playback.cdn.origin_secret_ref {
        mounts.push(Mount::secret(
            "origin-secret",
            origin.name.clone(),
            Some(vec![(
                ORIGIN_SECRET_KEY.to_owned(),
                ORIGIN_SECRET_KEY.to_owned(),
            )]),
            ORIGIN_SECRET_DIR,
        ));
    }
    if let Some(recording) = &room.recording {
        let credentials = match &recording.s3.credentials_secret_ref {
            Some(secret) => Some(secret.name.clone()),
            None if recording.uses_default_credentials => Some(room.room.child(S3_SECRET)),
            None => None,
        };
        if let Some(secret) = credentials {
            mounts.push(Mount::secret(
                "s3-credentials",
                secret,
                None,
                S3_CREDENTIALS_DIR,
            ));
        }
        mounts.push(Mount::empty_dir(
            "spool",
            spec.recording.spool_size_mib(),
            SPOOL_DIR,
        ));
    }

    let mut container = pod::worker_container(
        "media",
        &config.media_image,
        config.image_pull_policy.as_ref(),
        "roomcast-media",
    );
    container.ports = Some(vec![
        pod::container_port("rtmp", RTMP_PORT),
        pod::container_port("http", HTTP_PORT),
        pod::container_port("metrics", METRICS_PORT),
    ]);
    container.resources = Some(config.media_resources_for(spec).0);

    Deployment {
        metadata: room.room.meta("media", Component::Media),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: room.room.selector(Component::Media),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: template(
                room,
                config,
                Component::Media,
                config_hash,
                container,
                mounts,
            ),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn chat_mounts(room: &ValidRoom) -> Vec<Mount> {
    let mut mounts = common_mounts(room, Some(room_key_mount(room, CHAT_SIGNING_KEY_KEY)));
    if let Some(source) = &room.redis {
        mounts.push(one_key_mount(
            "redis",
            secret_name(room, source, REDIS_SECRET),
            REDIS_URL_KEY,
            REDIS_DIR,
        ));
    }
    mounts
}

pub fn build_chat_deployment(
    room: &ValidRoom,
    config: &OperatorConfig,
    config_hash: &str,
) -> Deployment {
    let mut container = pod::worker_container(
        "chat",
        &config.chat_image,
        config.image_pull_policy.as_ref(),
        "roomcast-chat",
    );
    container.ports = Some(vec![
        pod::container_port("http", HTTP_PORT),
        pod::container_port("metrics", METRICS_PORT),
    ]);
    container.resources = Some(config.chat_resources_for(&room.spec));
    // Who may name the client in X-Forwarded-For (chat's per-address cap); see the flag.
    // Empty is chat's own default (no header is read), so nothing is set.
    if !config.chat_trusted_proxies.trim().is_empty() {
        container.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: CHAT_TRUSTED_PROXIES_ENV.to_owned(),
            value: Some(config.chat_trusted_proxies.clone()),
            ..EnvVar::default()
        });
    }
    Deployment {
        metadata: room.room.meta("chat", Component::Chat),
        spec: Some(DeploymentSpec {
            replicas: Some(room.chat_replicas),
            selector: room.room.selector(Component::Chat),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    // Keep every connected viewer's replica until its replacement is ready.
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: template(
                room,
                config,
                Component::Chat,
                config_hash,
                container,
                chat_mounts(room),
            ),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
