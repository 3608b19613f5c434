//! Step 2 of a reconcile: pure builders, one per child kind, `(room, config, inputs) -> object`.
//!
//! Deterministic by construction: ordered maps only, no clock, no randomness (generated keys
//! arrive in [`BuildInputs`]). Each child carries the hash of its own content in the
//! `roomcast.dev/applied-hash` annotation, which lets the controller skip applying what is
//! already there.

mod child;
mod config_map;
mod ingress;
mod network_policy;
mod pdb;
mod pod;
mod rbac;
mod secret;
mod service;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use roomcast_crds::worker_config::WorkerConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub(crate) use self::child::child_kinds;
pub use self::{
    child::{Child, ChildKind},
    config_map::{build_config_map, worker_config},
    ingress::{build_chat_ingress, build_media_ingress},
    network_policy::{build_chat_network_policy, build_media_network_policy},
    pdb::build_chat_pdb,
    rbac::{build_role, build_role_binding, build_service_account},
    secret::{build_copied_secret, build_keys_secret},
    service::{RTMP_SUFFIX, build_chat_service, build_hls_service, build_rtmp_service},
    workloads::{CHAT_TRUSTED_PROXIES_ENV, build_chat_deployment, build_media_deployment},
};
use crate::{
    Error, Result,
    config::OperatorConfig,
    keys::RoomKeys,
    validate::{SecretSource, ValidRoom},
};

/// Secret suffixes of the children.
pub const KEYS_SECRET: &str = "keys";
pub const S3_SECRET: &str = "s3";
pub const MONGODB_SECRET: &str = "mongodb";
pub const REDIS_SECRET: &str = "redis";

/// Inputs that come from the cluster rather than the spec: resolved keys and the contents
/// of the operator's default Secrets to copy into the room's namespace. The controller reads
/// a default Secret only for a room that uses the shared copy ([`SecretSource::Shared`]), so
/// without `--share-default-credentials` these stay empty.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    pub keys: RoomKeys,
    /// Data of the operator's default S3 credentials Secret, when the room uses it.
    pub default_s3_credentials: Option<BTreeMap<String, ByteString>>,
    /// Data of the operator's default MongoDB Secret, when the room uses it.
    pub default_mongodb: Option<BTreeMap<String, ByteString>>,
    /// Data of the operator's default Redis Secret, when the room uses it.
    pub default_redis: Option<BTreeMap<String, ByteString>>,
}

/// The Secret a worker mounts for `source`: the room's own, or the shared copy
/// `<room>-<suffix>`.
pub fn secret_name(room: &ValidRoom, source: &SecretSource, suffix: &str) -> String {
    match source {
        SecretSource::Room(name) => name.clone(),
        SecretSource::Shared => room.room.child(suffix),
    }
}

/// Short SHA-256 of a JSON value, over its canonical form (object keys sorted), so the hash
/// depends on content only: not on field order, nor on whether a build enables serde_json's
/// `preserve_order`.
pub fn content_hash(value: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    feed_canonical(&mut hasher, value);
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn feed_canonical(hasher: &mut Sha256, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            hasher.update(b"{");
            for (key, value) in entries {
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                feed_canonical(hasher, value);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                feed_canonical(hasher, item);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

fn hash_of(what: &'static str, value: &impl Serialize) -> Result<String> {
    let value = serde_json::to_value(value).map_err(|source| Error::Serialize { what, source })?;
    Ok(content_hash(&value))
}

/// The media worker reads all of the configuration: any change restarts it.
fn media_config_hash(worker: &WorkerConfig) -> Result<String> {
    hash_of("worker config", worker)
}

/// Chat reads only its part: a media-only change (a new rendition, a longer DVR window) must
/// not drop every viewer's chat connection.
fn chat_config_hash(worker: &WorkerConfig) -> Result<String> {
    hash_of(
        "chat config",
        &(
            &worker.room,
            &worker.chat,
            &worker.playback.path_prefix,
            &worker.mongodb_uri_file,
        ),
    )
}

/// Every child of a room, in apply order (what others reference comes first).
pub fn build_children(
    room: &ValidRoom,
    config: &OperatorConfig,
    inputs: &BuildInputs,
) -> Result<Vec<Child>> {
    let worker = worker_config(room);
    let config_map = build_config_map(room, &worker)?;
    let (media_hash, chat_hash) = (media_config_hash(&worker)?, chat_config_hash(&worker)?);

    let mut children = vec![Child::Secret(build_keys_secret(room, &inputs.keys))];
    if let (Some(recording), Some(data)) = (&room.recording, &inputs.default_s3_credentials)
        && recording.uses_default_credentials
    {
        children.push(Child::Secret(build_copied_secret(room, S3_SECRET, data)));
    }
    for (source, suffix, data) in [
        (&room.mongodb, MONGODB_SECRET, &inputs.default_mongodb),
        (&room.redis, REDIS_SECRET, &inputs.default_redis),
    ] {
        if let (Some(SecretSource::Shared), Some(data)) = (source, data) {
            children.push(Child::Secret(build_copied_secret(room, suffix, data)));
        }
    }
    children.extend([
        Child::ConfigMap(config_map),
        Child::ServiceAccount(build_service_account(room)),
        Child::Role(build_role(room)),
        Child::RoleBinding(build_role_binding(room)),
        // Before the pods: they never run a moment without their policy.
        Child::NetworkPolicy(build_media_network_policy(room, config)),
        Child::Service(build_rtmp_service(room, config)),
        Child::Service(build_hls_service(room)),
        Child::Deployment(build_media_deployment(room, config, &media_hash)),
    ]);
    if room.spec.chat.enabled {
        children.extend([
            Child::NetworkPolicy(build_chat_network_policy(room, config)),
            Child::Service(build_chat_service(room)),
            Child::Deployment(build_chat_deployment(room, config, &chat_hash)),
            Child::PodDisruptionBudget(build_chat_pdb(room)),
        ]);
    }
    if let Some(ingress) = build_media_ingress(room) {
        children.push(Child::Ingress(ingress));
    }
    if let Some(ingress) = build_chat_ingress(room) {
        children.push(Child::Ingress(ingress));
    }
    children.into_iter().map(Child::stamp_hash).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::content_hash;

    #[test]
    fn content_hash_ignores_key_order_but_not_content() {
        let mut ab = Map::new();
        ab.insert("a".into(), json!(1));
        ab.insert("b".into(), json!({"y": [1, 2], "x": "s"}));
        let mut ba = Map::new();
        ba.insert("b".into(), json!({"x": "s", "y": [1, 2]}));
        ba.insert("a".into(), json!(1));
        assert_eq!(
            content_hash(&Value::Object(ab.clone())),
            content_hash(&Value::Object(ba))
        );
        ab.insert("a".into(), json!(2));
        assert_ne!(
            content_hash(&Value::Object(ab)),
            content_hash(&json!({"a": 1, "b": {"x": "s", "y": [1, 2]}}))
        );
    }
}
