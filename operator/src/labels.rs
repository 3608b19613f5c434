//! The one place labels and names of a room's children come from. Selectors are derived from
//! the same function as pod labels, so a Service can never miss its pods.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;
use roomcast_crds::{RoomIdentity, StreamRoom};

use crate::{Error, FIELD_MANAGER, Result};

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const ROOM: &str = "roomcast.dev/room";
/// Hash of what the operator last applied to a child; equal hashes mean nothing to apply.
pub const APPLIED_HASH: &str = "roomcast.dev/applied-hash";
/// Label selector that finds every object this operator manages (used by its watches).
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=roomcast-operator";

/// True when `meta` names the object with `owner_uid` as its controller: the only objects a
/// room may update or delete. Labels prove nothing (anyone can copy them); the controller
/// owner reference carries the room's uid, which a new room of the same name does not share.
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

/// The part of a room a child belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Media,
    Chat,
    /// Objects shared by the whole room (keys, config, ingress, policy).
    Room,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Media => "media",
            Component::Chat => "chat",
            Component::Room => "room",
        }
    }
}

/// Identity of a validated room: its name, namespace and owner reference.
#[derive(Clone, Debug)]
pub struct RoomRef {
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
}

impl RoomRef {
    pub fn of(room: &StreamRoom) -> Result<Self> {
        let name = room
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name"))?;
        let namespace = room
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let owner = OwnerReference {
            // Foreground deletion of a room waits for its children (the media pod finishes
            // its segment and closes the recording before the room is gone). The API server
            // lets the operator set this only with `update` on `streamrooms/finalizers`.
            block_owner_deletion: Some(true),
            ..room
                .controller_owner_ref(&())
                .ok_or(Error::MissingField("metadata.uid"))?
        };
        Ok(Self {
            name,
            namespace,
            owner,
        })
    }

    /// The room as `namespace/name`.
    pub fn identity(&self) -> RoomIdentity {
        RoomIdentity::new(&self.namespace, &self.name)
    }

    /// Name of a child: `<room>-<suffix>`.
    pub fn child(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// Labels every child of this component carries.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME.to_owned(), "roomcast".to_owned()),
            (INSTANCE.to_owned(), self.name.clone()),
            (COMPONENT.to_owned(), component.as_str().to_owned()),
            (MANAGED_BY.to_owned(), FIELD_MANAGER.to_owned()),
            (ROOM.to_owned(), self.name.clone()),
        ])
    }

    /// Labels that select this component's pods: stable across upgrades (no version labels).
    pub fn selector_labels(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME.to_owned(), "roomcast".to_owned()),
            (COMPONENT.to_owned(), component.as_str().to_owned()),
            (ROOM.to_owned(), self.name.clone()),
        ])
    }

    pub fn selector(&self, component: Component) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels(component)),
            ..LabelSelector::default()
        }
    }

    /// Metadata of a child: name, namespace, labels, owner reference.
    pub fn meta(&self, suffix: &str, component: Component) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.child(suffix)),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}
