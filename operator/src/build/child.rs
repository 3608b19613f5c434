//! The kinds of object the operator owns for a room, listed once in [`child_kinds!`], and the
//! [`Child`] enum that carries one built object of any of them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::content_hash;
use crate::{Error, Result, labels};

/// Every kind of child the operator owns, in one list. Everything that must name each kind
/// is generated from it: the [`Child`] and [`ChildKind`] enums here, apply and delete
/// (`apply.rs`), and the controller's watches, caches, leftovers detection and applied-hash
/// lookup (`ChildStores` in `controller.rs`).
///
/// **Adding a kind is one line here plus its builder** (`build/<kind>.rs`, called from
/// [`build_children`](super::build_children)); the operator's RBAC in the Helm chart must
/// also allow it.
///
/// Each line: `Variant: k8s-openapi type => ChildStores field (cached as)`, where the
/// controller caches the whole `object` (it reads the keys Secret's data, the Deployments'
/// status, the RTMP Service's load balancer) or only its `metadata` (the applied-hash
/// annotation and owner references are all it needs; keeps memory flat with many rooms).
/// Leftovers are deleted in this order.
///
/// Used as `child_kinds!(callback)`: expands to `callback! { <the list> }`.
macro_rules! child_kinds {
    ($callback:ident) => {
        $callback! {
            Secret: k8s_openapi::api::core::v1::Secret => secrets (object),
            ConfigMap: k8s_openapi::api::core::v1::ConfigMap => config_maps (metadata),
            ServiceAccount: k8s_openapi::api::core::v1::ServiceAccount => service_accounts (metadata),
            Role: k8s_openapi::api::rbac::v1::Role => roles (metadata),
            RoleBinding: k8s_openapi::api::rbac::v1::RoleBinding => role_bindings (metadata),
            Service: k8s_openapi::api::core::v1::Service => services (object),
            Deployment: k8s_openapi::api::apps::v1::Deployment => deployments (object),
            Ingress: k8s_openapi::api::networking::v1::Ingress => ingresses (metadata),
            NetworkPolicy: k8s_openapi::api::networking::v1::NetworkPolicy => network_policies (metadata),
            PodDisruptionBudget: k8s_openapi::api::policy::v1::PodDisruptionBudget => pdbs (metadata),
        }
    };
}
pub(crate) use child_kinds;

macro_rules! define_child {
    ($($kind:ident: $ty:ty => $field:ident ($cached:ident),)*) => {
        /// One object the operator owns for a room.
        #[derive(Clone, Debug, PartialEq)]
        #[expect(
            clippy::large_enum_variant,
            reason = "a room has about fifteen children, built once per pass: boxing buys nothing"
        )]
        pub enum Child {
            $($kind($ty),)*
        }

        /// The kind of a child, without the object (what a leftover in the cluster is).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ChildKind {
            $($kind,)*
        }

        impl ChildKind {
            /// Every kind, in the order of the list.
            pub const ALL: &[ChildKind] = &[$(ChildKind::$kind,)*];

            /// The Kubernetes `kind`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ChildKind::$kind => <$ty as k8s_openapi::Resource>::KIND,)*
                }
            }
        }

        impl Child {
            pub fn child_kind(&self) -> ChildKind {
                match self {
                    $(Child::$kind(_) => ChildKind::$kind,)*
                }
            }

            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Child::$kind(o) => &o.metadata,)*
                }
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Child::$kind(o) => &mut o.metadata,)*
                }
            }

            /// The object as JSON, with `apiVersion` and `kind`.
            pub fn to_json(&self) -> Result<serde_json::Value> {
                match self {
                    $(Child::$kind(o) => to_value(o),)*
                }
            }
        }
    };
}
child_kinds!(define_child);

impl std::fmt::Display for ChildKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Child {
    /// The Kubernetes `kind` of the object.
    pub fn kind(&self) -> &'static str {
        self.child_kind().as_str()
    }

    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// Content hash recorded on the object.
    pub fn applied_hash(&self) -> Option<&str> {
        self.meta()
            .annotations
            .as_ref()?
            .get(labels::APPLIED_HASH)
            .map(String::as_str)
    }

    pub(super) fn stamp_hash(mut self) -> Result<Self> {
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
