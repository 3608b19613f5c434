//! Per-room identity of the workers: a ServiceAccount whose Role allows patching the status
//! of this one room and nothing else, so a compromised worker cannot touch other rooms.

use k8s_openapi::api::{
    core::v1::ServiceAccount,
    rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
};

use crate::{labels::Component, validate::ValidRoom};

pub const WORKER_SUFFIX: &str = "worker";

pub fn build_service_account(room: &ValidRoom) -> ServiceAccount {
    let mut metadata = room.room.meta(WORKER_SUFFIX, Component::Room);
    // Pod identity for S3 (e.g. EKS IRSA) is an annotation on the ServiceAccount.
    let annotations = room
        .recording
        .as_ref()
        .map(|r| r.s3.service_account_annotations.clone())
        .filter(|a| !a.is_empty());
    metadata.annotations = annotations;
    ServiceAccount {
        metadata,
        ..ServiceAccount::default()
    }
}

/// What the workers call: chat reads the status (`get_status`: is the room live?) and both
/// write their part of it (`patch_status`). Nothing on the room's spec, no Events, no list
/// or watch: one verb pair on one named object.
pub fn build_role(room: &ValidRoom) -> Role {
    Role {
        metadata: room.room.meta(WORKER_SUFFIX, Component::Room),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![roomcast_crds::GROUP.to_owned()]),
            resources: Some(vec!["streamrooms/status".to_owned()]),
            resource_names: Some(vec![room.room.name.clone()]),
            verbs: vec!["get".to_owned(), "patch".to_owned()],
            ..PolicyRule::default()
        }]),
    }
}

pub fn build_role_binding(room: &ValidRoom) -> RoleBinding {
    let name = room.room.child(WORKER_SUFFIX);
    RoleBinding {
        metadata: room.room.meta(WORKER_SUFFIX, Component::Room),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name,
            namespace: Some(room.room.namespace.clone()),
            ..Subject::default()
        }]),
    }
}
