//! Step 3 of a reconcile: server-side apply, one field manager (`roomcast-operator`),
//! forced so the operator's intent wins over hand edits of the fields it owns.

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use roomcast_crds::{StreamRoom, StreamRoomStatus};
use serde_json::json;

use crate::{
    Error, FIELD_MANAGER, Result,
    build::{Child, each_child},
};

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Apply one child into its namespace.
pub async fn apply_child(client: &Client, child: &Child) -> Result<()> {
    let namespace = child
        .meta()
        .namespace
        .as_deref()
        .ok_or(Error::MissingField("child namespace"))?;
    let name = child.name();
    each_child!(child, object => {
        let api = Api::namespaced(client.clone(), namespace);
        api_apply(&api, name, object).await
    })
}

async fn api_apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &params(), &Patch::Apply(object)).await?;
    Ok(())
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
