//! Step 3 of a reconcile: server-side apply, one field manager (`roomcast-operator`),
//! forced so the operator's intent wins over hand edits of the fields it owns.
//!
//! Forcing is only safe on objects the room already controls: before a child is applied,
//! [`holder`] asks who holds its name, and the controller applies nothing for a room whose
//! child name is taken by an object it does not control (a user who may only create
//! StreamRooms must not overwrite another Secret or Role by picking a matching room name).

use k8s_openapi::{NamespaceResourceScope, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use roomcast_crds::{StreamRoom, StreamRoomStatus};
use serde_json::json;

use crate::{
    Error, FIELD_MANAGER, Result,
    build::{Child, ChildKind, child_kinds},
    labels,
};

/// Who holds the name a child wants, as the API server answers now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No object has the name: applying creates the child.
    Nobody,
    /// The object is controlled by this room: applying updates it.
    ThisRoom,
    /// Someone else's object (no controller, or another one): never applied.
    Other,
}

impl Holder {
    /// Who holds a name, given the metadata of the object found under it (if any).
    pub fn of(existing: Option<&ObjectMeta>, owner_uid: &str) -> Self {
        match existing {
            None => Holder::Nobody,
            Some(meta) if labels::is_controlled_by(meta, owner_uid) => Holder::ThisRoom,
            Some(_) => Holder::Other,
        }
    }
}

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn namespace_and_name(child: &Child) -> Result<(&str, &str)> {
    let namespace = child
        .meta()
        .namespace
        .as_deref()
        .ok_or(Error::MissingField("child namespace"))?;
    Ok((namespace, child.name()))
}

macro_rules! define_apply {
    ($($kind:ident: $ty:ty => $field:ident ($cached:ident),)*) => {
        /// Apply one child into its namespace.
        pub async fn apply_child(client: &Client, child: &Child) -> Result<()> {
            let (namespace, name) = namespace_and_name(child)?;
            match child {
                $(Child::$kind(object) => apply::<$ty>(client, namespace, name, object).await,)*
            }
        }

        /// Ask the API server (metadata only: a foreign Secret's data is never read) who holds
        /// the child's name.
        pub async fn holder(client: &Client, child: &Child, owner_uid: &str) -> Result<Holder> {
            let (namespace, name) = namespace_and_name(child)?;
            let existing = match child {
                $(Child::$kind(_) => existing_meta::<$ty>(client, namespace, name).await?,)*
            };
            Ok(Holder::of(existing.as_ref(), owner_uid))
        }

        /// Delete a child the room no longer wants (foreground: its pods go with it).
        pub async fn delete_child(
            client: &Client,
            namespace: &str,
            kind: ChildKind,
            name: &str,
        ) -> Result<()> {
            match kind {
                $(ChildKind::$kind => delete::<$ty>(client, namespace, name).await,)*
            }
        }
    };
}
child_kinds!(define_apply);

async fn apply<K>(client: &Client, namespace: &str, name: &str, object: &K) -> Result<()>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &params(), &Patch::Apply(object)).await?;
    Ok(())
}

/// What the generic calls below need of a child type (every `child_kinds!` type is one).
trait NamespacedObject:
    kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> NamespacedObject for K where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

async fn existing_meta<K: NamespacedObject>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<ObjectMeta>> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_metadata_opt(name).await?.map(|o| o.metadata))
}

async fn delete<K: NamespacedObject>(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => Ok(()),
        // Already gone: what we wanted.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Apply the operator's fields of a room's status.
pub async fn apply_status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &StreamRoomStatus,
) -> Result<()> {
    let api: Api<StreamRoom> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": roomcast_crds::API_VERSION,
        "kind": roomcast_crds::KIND,
        "status": status,
    });
    api.patch_status(name, &params(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Apply a JSON patch (RFC 6902) to a room's status: the one way to remove list entries that
/// other field managers own (see [`crate::status::prune_chat_replicas_patch`]).
pub async fn json_patch_status(
    client: &Client,
    namespace: &str,
    name: &str,
    patch: serde_json::Value,
) -> Result<()> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|source| Error::Serialize {
            what: "status JSON patch",
            source,
        })?;
    let api: Api<StreamRoom> = Api::namespaced(client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(())
}
