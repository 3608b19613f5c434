use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};

use crate::{
    keys::{ROTATED_ANNOTATION_PREFIX, RoomKeys},
    labels::Component,
    validate::ValidRoom,
};

/// `<room>-keys`: the generated stream key and chat signing key. The values come from
/// [`crate::keys::resolve_keys`], which never replaces an existing key unasked.
pub fn build_keys_secret(room: &ValidRoom, keys: &RoomKeys) -> Secret {
    let mut meta = room.room.meta(super::KEYS_SECRET, Component::Room);
    if !keys.rotated.is_empty() {
        meta.annotations = Some(
            keys.rotated
                .iter()
                .map(|(k, v)| (format!("{ROTATED_ANNOTATION_PREFIX}{k}"), v.clone()))
                .collect(),
        );
    }
    Secret {
        metadata: meta,
        type_: Some("Opaque".to_owned()),
        data: Some(
            keys.values
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// `<room>-<suffix>`: a copy of one of the operator's default Secrets (S3 credentials,
/// MongoDB URI), because a pod can only mount Secrets of its own namespace.
pub fn build_copied_secret(
    room: &ValidRoom,
    suffix: &str,
    data: &BTreeMap<String, ByteString>,
) -> Secret {
    Secret {
        metadata: room.room.meta(suffix, Component::Room),
        type_: Some("Opaque".to_owned()),
        data: Some(data.clone()),
        ..Secret::default()
    }
}
