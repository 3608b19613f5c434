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

/// Labels to match, from `key=value[,key=value...]` (the equality subset of `kubectl -l`,
/// which is all a NetworkPolicy's `matchLabels` and a simple watch need). Empty text gives an
/// empty map: "everything".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchLabels(pub BTreeMap<String, String>);

impl MatchLabels {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut labels = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not key=value"));
            };
            let (key, value) = (key.trim(), value.trim());
            if !is_label_key(key) {
                return Err(format!("{key:?} is not a label key"));
            }
            if !is_label_value(value) {
                return Err(format!("{value:?} is not a label value"));
            }
            if labels.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(format!("{key:?} appears twice"));
            }
        }
        Ok(Self(labels))
    }

    /// True when every label to match is on `labels` (an empty selector matches everything).
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.0
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }

    /// The selector in `kubectl -l` form, for watches.
    pub fn to_selector_string(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// As a Kubernetes LabelSelector (`{}` when empty: everything).
    pub fn to_label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: (!self.0.is_empty()).then(|| self.0.clone()),
            ..LabelSelector::default()
        }
    }
}

/// A label name with an optional DNS-subdomain prefix (`example.com/name`).
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// An RFC 1123 DNS subdomain: lower-case labels of at most 63 characters, 253 in all.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// At most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric (or empty).
fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && value
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_labels_parse_the_equality_form_and_refuse_anything_else() {
        let parsed = MatchLabels::parse(" kubernetes.io/metadata.name=ingress-nginx , team=a ")
            .expect("parses");
        assert_eq!(
            parsed.to_selector_string(),
            "kubernetes.io/metadata.name=ingress-nginx,team=a"
        );
        assert_eq!(MatchLabels::parse(""), Ok(MatchLabels::default()));
        for bad in [
            "team",
            "team!=a",
            "team in (a,b)",
            "=a",
            "a=b=c",
            "Example.COM/x=a",
            "a=-b",
            "a=b,a=c",
            "a=b c",
            "a=b;rm",
            "/x=a",
        ] {
            MatchLabels::parse(bad).expect_err(bad);
        }
    }

    #[test]
    fn match_labels_need_every_label_and_empty_matches_everything() {
        let selector = MatchLabels::parse("roomcast.dev/tenant=enabled").expect("parses");
        let on = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selector.matches(Some(&on(&[("roomcast.dev/tenant", "enabled"), ("x", "y")]))));
        assert!(!selector.matches(Some(&on(&[("roomcast.dev/tenant", "disabled")]))));
        assert!(!selector.matches(Some(&on(&[("roomcast.dev/tenant-x", "enabled")]))));
        assert!(!selector.matches(None));
        assert!(MatchLabels::default().matches(None));
    }
}
