use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use roomcast_crds::worker_config::{HTTP_PORT, METRICS_PORT, RTMP_PORT};

use crate::{labels, labels::Component, validate::ValidRoom};

/// `<room>`: the room's pods accept traffic on their serving ports only (RTMP, HTTP,
/// metrics). Egress stays open: S3, MongoDB and the API server live at addresses the operator
/// cannot know.
pub fn build_network_policy(room: &ValidRoom) -> NetworkPolicy {
    let tcp = |port: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    };
    let mut metadata = room.room.meta("room", Component::Room);
    metadata.name = Some(room.room.name.clone());
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(
                    [(labels::ROOM.to_owned(), room.room.name.clone())]
                        .into_iter()
                        .collect(),
                ),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![tcp(RTMP_PORT), tcp(HTTP_PORT), tcp(METRICS_PORT)]),
                ..NetworkPolicyIngressRule::default()
            }]),
            egress: None,
        }),
    }
}
