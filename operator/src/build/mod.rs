//! Step 2 of a reconcile: pure builders, one per child kind, `(room, config, inputs) -> object`.
//!
//! Deterministic by construction: ordered maps only, no clock, no randomness (generated keys
//! arrive in [`BuildInputs`]). Each child carries the hash of its own content in the
//! `roomcast.dev/applied-hash` annotation, which lets the controller skip applying what is
//! already there.

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

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::{
    config_map::{build_config_map, worker_config},
    ingress::{build_chat_ingress, build_media_ingress},
    network_policy::build_network_policy,
    pdb::build_chat_pdb,
    rbac::{build_role, build_role_binding, build_service_account},
    secret::{build_copied_secret, build_keys_secret},
    service::{build_chat_service, build_hls_service, build_rtmp_service},
    workloads::{build_chat_deployment, build_media_deployment},
};
use crate::{Error, Result, config::OperatorConfig, keys::RoomKeys, labels, validate::ValidRoom};

/// Secret suffixes of the children.
pub const KEYS_SECRET: &str = "keys";
pub const S3_SECRET: &str = "s3";
pub const MONGODB_SECRET: &str = "mongodb";

/// Inputs that come from the cluster rather than the spec: resolved keys and the contents
/// of the operator's default Secrets to copy into the room's namespace.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    pub keys: RoomKeys,
    /// Data of the operator's default S3 credentials Secret, when the room uses it.
    pub default_s3_credentials: Option<BTreeMap<String, ByteString>>,
    /// Data of the operator's default MongoDB Secret.
    pub default_mongodb: Option<BTreeMap<String, ByteString>>,
}

/// One object the operator owns for a room.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a room has about fifteen children, built once per pass: boxing buys nothing"
)]
pub enum Child {
    Secret(Secret),
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Service(Service),
    Deployment(Deployment),
    Ingress(Ingress),
    NetworkPolicy(NetworkPolicy),
    PodDisruptionBudget(PodDisruptionBudget),
}

macro_rules! each_child {
    ($child:expr, $obj:ident => $body:expr) => {
        match $child {
            Child::Secret($obj) => $body,
            Child::ConfigMap($obj) => $body,
            Child::ServiceAccount($obj) => $body,
            Child::Role($obj) => $body,
            Child::RoleBinding($obj) => $body,
            Child::Service($obj) => $body,
            Child::Deployment($obj) => $body,
            Child::Ingress($obj) => $body,
            Child::NetworkPolicy($obj) => $body,
            Child::PodDisruptionBudget($obj) => $body,
        }
    };
}
pub(crate) use each_child;

impl Child {
    pub fn kind(&self) -> &'static str {
        use k8s_openapi::Resource;
        fn kind_of<K: Resource>(_: &K) -> &'static str {
            K::KIND
        }
        each_child!(self, o => kind_of(o))
    }

    pub fn meta(&self) -> &ObjectMeta {
        each_child!(self, o => &o.metadata)
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        each_child!(self, o => &mut o.metadata)
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        each_child!(self, o => to_value(o))
    }

    /// Content hash recorded on the object.
    pub fn applied_hash(&self) -> Option<&str> {
        self.meta()
            .annotations
            .as_ref()?
            .get(labels::APPLIED_HASH)
            .map(String::as_str)
    }

    fn stamp_hash(mut self) -> Result<Self> {
        let hash = content_hash(&self.to_json()?);
        self.meta_mut()
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(labels::APPLIED_HASH.to_owned(), hash);
        Ok(self)
    }
}

fn to_value<K: Serialize + k8s_openapi::Resource>(obj: &K) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(obj).map_err(|source| Error::Serialize {
        what: K::KIND,
        source,
    })?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::API_VERSION.into());
        map.insert("kind".into(), K::KIND.into());
    }
    Ok(value)
}

/// Short SHA-256 of a JSON value (serde_json maps are ordered, so this is stable).
pub fn content_hash(value: &serde_json::Value) -> String {
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Every child of a room, in apply order (what others reference comes first).
pub fn build_children(
    room: &ValidRoom,
    config: &OperatorConfig,
    inputs: &BuildInputs,
) -> Result<Vec<Child>> {
    let config_map = build_config_map(room, config)?;
    let config_hash = content_hash(&serde_json::to_value(&config_map.data).map_err(|source| {
        Error::Serialize {
            what: "ConfigMap",
            source,
        }
    })?);

    let mut children = vec![Child::Secret(build_keys_secret(room, &inputs.keys))];
    if let (Some(recording), Some(data)) = (&room.recording, &inputs.default_s3_credentials)
        && recording.uses_default_credentials
    {
        children.push(Child::Secret(build_copied_secret(room, S3_SECRET, data)));
    }
    if let Some(data) = &inputs.default_mongodb {
        children.push(Child::Secret(build_copied_secret(
            room,
            MONGODB_SECRET,
            data,
        )));
    }
    children.extend([
        Child::ConfigMap(config_map),
        Child::ServiceAccount(build_service_account(room)),
        Child::Role(build_role(room)),
        Child::RoleBinding(build_role_binding(room)),
        Child::Service(build_rtmp_service(room, config)),
        Child::Service(build_hls_service(room)),
        Child::Deployment(build_media_deployment(room, config, inputs, &config_hash)),
    ]);
    if room.spec.chat.enabled {
        children.extend([
            Child::Service(build_chat_service(room)),
            Child::Deployment(build_chat_deployment(room, config, inputs, &config_hash)),
            Child::PodDisruptionBudget(build_chat_pdb(room)),
        ]);
    }
    if let Some(ingress) = build_media_ingress(room) {
        children.push(Child::Ingress(ingress));
    }
    if let Some(ingress) = build_chat_ingress(room) {
        children.push(Child::Ingress(ingress));
    }
    children.push(Child::NetworkPolicy(build_network_policy(room)));
    children.into_iter().map(Child::stamp_hash).collect()
}
