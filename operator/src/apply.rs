//! Step 3 of a reconcile: server-side apply, one field manager (`roomcast-operator`),
//! forced so the operator's intent wins over hand edits of the fields it owns.

use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
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

/// Delete a child the room no longer wants (foreground: its pods go with it).
pub async fn delete_child(client: &Client, namespace: &str, kind: &str, name: &str) -> Result<()> {
    use k8s_openapi::api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{Role, RoleBinding},
    };
    async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<()>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        match api.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => Ok(()),
            // Already gone: what we wanted.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    match kind {
        "Secret" => delete::<Secret>(client, namespace, name).await,
        "ConfigMap" => delete::<ConfigMap>(client, namespace, name).await,
        "ServiceAccount" => delete::<ServiceAccount>(client, namespace, name).await,
        "Role" => delete::<Role>(client, namespace, name).await,
        "RoleBinding" => delete::<RoleBinding>(client, namespace, name).await,
        "Service" => delete::<Service>(client, namespace, name).await,
        "Deployment" => delete::<Deployment>(client, namespace, name).await,
        "Ingress" => delete::<Ingress>(client, namespace, name).await,
        "NetworkPolicy" => delete::<NetworkPolicy>(client, namespace, name).await,
        "PodDisruptionBudget" => delete::<PodDisruptionBudget>(client, namespace, name).await,
        other => Err(Error::Config(format!("cannot delete unknown kind {other}"))),
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
