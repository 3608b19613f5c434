//! One NetworkPolicy per component, `<room>-media` and `<room>-chat`, closed both ways:
//!
//! ```text
//!   anywhere ──RTMP 1935──────────────► media ──► DNS, API server, S3 (recording), MongoDB
//!     (behind the ingest gateway: only the gateway's pods and the room's own namespace)
//!   ingress namespaces ──HTTP 8080────► media, chat
//!   monitoring namespaces ──9090──────► media, chat
//!                                       chat ──► DNS, API server, MongoDB, Redis
//! ```
//!
//! A room's pods reach nothing else: not each other, not other rooms, not the cloud metadata
//! address, not an internal service a tenant names as its S3 endpoint. Stores without
//! configured CIDRs are reachable on their ports only (see [`crate::network`]).

use k8s_openapi::{
    api::networking::v1::{
        IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule,
        NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use roomcast_crds::worker_config::{HTTP_PORT, METRICS_PORT, RTMP_PORT};

use crate::{
    config::OperatorConfig, labels::Component, labels::MatchLabels, network::Destination,
    validate::ValidRoom,
};

/// Where cluster DNS runs on kubeadm, kind, EKS, GKE and AKS alike.
const DNS_NAMESPACE: &str = "kube-system";
const DNS_POD_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
const DNS_PORT: u16 = 53;
/// Cut out of every "any address" destination: the link-local ranges, where cloud metadata
/// lives (169.254.169.254 on AWS, GCP and Azure), and the metadata addresses outside them
/// (Alibaba's 100.100.100.200, AWS's IPv6 fd00:ec2::254).
const ANY_IPV4: (&str, &[&str]) = ("0.0.0.0/0", &["169.254.0.0/16", "100.100.100.200/32"]);
const ANY_IPV6: (&str, &[&str]) = ("::/0", &["fe80::/10", "fd00:ec2::254/128"]);

/// The media pod's policy: RTMP from anywhere (or the gateway), HLS from the Ingress controller, metrics from
/// monitoring; out to DNS, the API server, S3 when the room records and MongoDB when the
/// platform has one.
pub fn build_media_network_policy(room: &ValidRoom, config: &OperatorConfig) -> NetworkPolicy {
    let network = &config.network;
    let egress = egress(
        config,
        [
            room.recording.is_some().then(|| network.s3()),
            room.mongodb.is_some().then(|| network.mongodb()),
        ],
    );
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: rtmp_publishers(room, config),
        ports: Some(vec![port("TCP", RTMP_PORT)]),
    }];
    ingress.extend(served_ingress(config));
    policy(room, Component::Media, ingress, egress)
}

/// Who may publish RTMP. A room exposed as a Service takes streamers from the internet
/// (`None`: anywhere). Behind the gateway, only the gateway's pods, and the pods of the room's
/// own namespace: the Service stays for in-cluster publishers (a tenant's encoder or
/// restreamer), and a namespace is the tenant's boundary, so other tenants' pods stay out.
fn rtmp_publishers(room: &ValidRoom, config: &OperatorConfig) -> Option<Vec<NetworkPolicyPeer>> {
    if !room.through_gateway {
        return None;
    }
    let gateway = NetworkPolicyPeer {
        namespace_selector: Some(namespace_named(&config.operator_namespace)),
        pod_selector: Some(config.gateway.pod_labels.to_label_selector()),
        ..NetworkPolicyPeer::default()
    };
    let own_namespace = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    };
    Some(vec![gateway, own_namespace])
}

/// Selects the one namespace of that name (the label Kubernetes sets on every namespace).
fn namespace_named(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([("kubernetes.io/metadata.name".to_owned(), name.to_owned())].into()),
        ..LabelSelector::default()
    }
}

/// A chat pod's policy: socket.io from the Ingress controller, metrics from monitoring; out to
/// DNS, the API server, MongoDB (history, bans) and Redis (fan-out between replicas).
pub fn build_chat_network_policy(room: &ValidRoom, config: &OperatorConfig) -> NetworkPolicy {
    let network = &config.network;
    let egress = egress(
        config,
        [
            room.mongodb.is_some().then(|| network.mongodb()),
            room.redis.is_some().then(|| network.redis()),
        ],
    );
    policy(room, Component::Chat, served_ingress(config), egress)
}

fn policy(
    room: &ValidRoom,
    component: Component,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: room.room.meta(component.as_str(), component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(room.room.selector(component)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

/// HTTP (HLS origin or socket.io) from the Ingress controller, metrics from monitoring.
fn served_ingress(config: &OperatorConfig) -> Vec<NetworkPolicyIngressRule> {
    let from_namespaces = |selector: &MatchLabels| {
        Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(selector.to_label_selector()),
            ..NetworkPolicyPeer::default()
        }])
    };
    vec![
        NetworkPolicyIngressRule {
            from: from_namespaces(&config.network.ingress_namespace_selector),
            ports: Some(vec![port("TCP", HTTP_PORT)]),
        },
        NetworkPolicyIngressRule {
            from: from_namespaces(&config.network.monitoring_namespace_selector),
            ports: Some(vec![port("TCP", METRICS_PORT)]),
        },
    ]
}

/// What every worker needs, DNS and the API server (the workers write the room status),
/// then the stores this one uses.
fn egress(
    config: &OperatorConfig,
    stores: impl IntoIterator<Item = Option<Destination>>,
) -> Vec<NetworkPolicyEgressRule> {
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(namespace_named(DNS_NAMESPACE)),
            pod_selector: Some(LabelSelector {
                match_labels: Some(
                    [(DNS_POD_LABEL.0.to_owned(), DNS_POD_LABEL.1.to_owned())].into(),
                ),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(vec![port("UDP", DNS_PORT), port("TCP", DNS_PORT)]),
    };
    let mut rules = vec![dns, to(&config.network.api_server())];
    rules.extend(stores.into_iter().flatten().map(|store| to(&store)));
    rules
}

/// Egress to a destination's ports, at its CIDRs or, without any, at every address but the
/// metadata ones.
fn to(destination: &Destination) -> NetworkPolicyEgressRule {
    let block = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: (!except.is_empty()).then(|| except.iter().map(|e| (*e).to_owned()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    };
    let peers = if destination.cidrs.is_empty() {
        vec![block(ANY_IPV4.0, ANY_IPV4.1), block(ANY_IPV6.0, ANY_IPV6.1)]
    } else {
        destination.cidrs.iter().map(|c| block(c, &[])).collect()
    };
    NetworkPolicyEgressRule {
        to: Some(peers),
        ports: Some(destination.ports.iter().map(|p| port("TCP", *p)).collect()),
    }
}

fn port(protocol: &str, number: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(number))),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    }
}
