//! The rooms' NetworkPolicies: one per component, closed both ways.

use k8s_openapi::api::networking::v1::{
    NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use roomcast_operator::{config::OperatorConfig, labels, labels::MatchLabels, network::Cidrs};

use crate::fixtures::*;

/// `(protocol, port)` pairs of a rule.
type Ports = Vec<(String, i32)>;
/// An egress rule as `(peers, ports)`.
type Rule = (Vec<String>, Ports);

fn spec<'a>(children: &'a [roomcast_operator::build::Child], name: &str) -> &'a NetworkPolicySpec {
    network_policy(children, name)
        .spec
        .as_ref()
        .expect("NetworkPolicy spec")
}

fn ports_of(ports: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>) -> Ports {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    ports
        .into_iter()
        .flatten()
        .map(|p| {
            let number = match p.port {
                Some(IntOrString::Int(n)) => n,
                _ => panic!("named or missing port in {p:?}"),
            };
            (p.protocol.clone().unwrap_or_default(), number)
        })
        .collect()
}

/// An ingress rule as `(namespace selector labels or "anywhere", ports)`.
fn ingress_summary(rule: &NetworkPolicyIngressRule) -> (String, Ports) {
    let from = match &rule.from {
        None => "anywhere".to_owned(),
        Some(peers) => peers
            .iter()
            .map(|p| {
                assert!(p.pod_selector.is_none() && p.ip_block.is_none(), "{p:?}");
                let selector = p.namespace_selector.as_ref().expect("namespace selector");
                format!("ns{:?}", selector.match_labels.clone().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("|"),
    };
    (from, ports_of(rule.ports.as_ref()))
}

/// An egress rule as `(peers, ports)`; ipBlocks as `cidr-except`.
fn egress_summary(rule: &NetworkPolicyEgressRule) -> Rule {
    let peers = rule
        .to
        .iter()
        .flatten()
        .map(
            |p| match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
                (Some(block), None, None) => match &block.except {
                    Some(except) => format!("{}-{}", block.cidr, except.join("-")),
                    None => block.cidr.clone(),
                },
                (None, Some(ns), Some(pods)) => format!(
                    "ns{:?} pods{:?}",
                    ns.match_labels.clone().unwrap_or_default(),
                    pods.match_labels.clone().unwrap_or_default()
                ),
                other => panic!("unexpected peer {other:?}"),
            },
        )
        .collect();
    (peers, ports_of(rule.ports.as_ref()))
}

fn egress_of(policy: &NetworkPolicySpec) -> Vec<Rule> {
    policy.egress.iter().flatten().map(egress_summary).collect()
}

fn tcp(ports: &[i32]) -> Ports {
    ports.iter().map(|p| ("TCP".to_owned(), *p)).collect()
}

fn cidrs(items: &[&str]) -> Cidrs {
    Cidrs(strings(items))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const INGRESS_NS: &str = r#"ns{"kubernetes.io/metadata.name": "ingress-nginx"}"#;
const MONITORING_NS: &str = r#"ns{"kubernetes.io/metadata.name": "monitoring"}"#;

fn dns() -> Rule {
    (
        strings(&[
            r#"ns{"kubernetes.io/metadata.name": "kube-system"} pods{"k8s-app": "kube-dns"}"#,
        ]),
        vec![("UDP".to_owned(), 53), ("TCP".to_owned(), 53)],
    )
}

/// Any address but the link-local ranges and metadata addresses, on `ports`.
fn anywhere_on(ports: &[i32]) -> Rule {
    (
        strings(&[
            "0.0.0.0/0-169.254.0.0/16-100.100.100.200/32",
            "::/0-fe80::/10-fd00:ec2::254/128",
        ]),
        tcp(ports),
    )
}

#[test]
fn each_component_has_its_own_policy_selecting_only_its_pods() {
    let children = build(&room("{}"), &platform_config());
    assert_eq!(
        names_of(&children, "NetworkPolicy"),
        ["lobby-media", "lobby-chat"]
    );
    for (policy, own, other) in [
        ("lobby-media", "lobby-media", "lobby-chat"),
        ("lobby-chat", "lobby-chat", "lobby-media"),
    ] {
        let selector = spec(&children, policy)
            .pod_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("pod selector");
        assert!(
            is_subset(selector, pod_labels(deployment(&children, own))),
            "{policy} misses {own}"
        );
        assert!(
            !is_subset(selector, pod_labels(deployment(&children, other))),
            "{policy} selects {other}"
        );
        assert!(
            !is_subset(
                selector,
                &string_map(&[
                    (labels::NAME, "roomcast"),
                    (labels::ROOM, "other-room"),
                    (labels::COMPONENT, policy.trim_start_matches("lobby-")),
                ])
            ),
            "another room's pods must not be selected"
        );
        assert_eq!(
            spec(&children, policy).policy_types.as_deref(),
            Some(&strings(&["Ingress", "Egress"])[..])
        );
    }
}

#[test]
fn media_takes_rtmp_from_anywhere_hls_from_the_ingress_namespace_and_metrics_from_monitoring() {
    let children = build(&room("{}"), &platform_config());
    let ingress: Vec<_> = spec(&children, "lobby-media")
        .ingress
        .iter()
        .flatten()
        .map(ingress_summary)
        .collect();
    assert_eq!(
        ingress,
        [
            ("anywhere".to_owned(), tcp(&[1935])),
            (INGRESS_NS.to_owned(), tcp(&[8080])),
            (MONITORING_NS.to_owned(), tcp(&[9090])),
        ]
    );
}

#[test]
fn chat_takes_socket_io_only_from_the_ingress_namespace_and_metrics_from_monitoring() {
    let children = build(&room("{}"), &platform_config());
    let ingress: Vec<_> = spec(&children, "lobby-chat")
        .ingress
        .iter()
        .flatten()
        .map(ingress_summary)
        .collect();
    assert_eq!(ingress, served());
}

/// HTTP from the Ingress controller's namespace and metrics from monitoring's: what every
/// worker admits besides RTMP.
fn served() -> [(String, Ports); 2] {
    [
        (INGRESS_NS.to_owned(), tcp(&[8080])),
        (MONITORING_NS.to_owned(), tcp(&[9090])),
    ]
}

#[test]
fn every_container_port_is_allowed_by_its_own_policy() {
    let children = build(&room("{}"), &platform_config());
    for name in ["lobby-media", "lobby-chat"] {
        let allowed: Vec<i32> = spec(&children, name)
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| ports_of(r.ports.as_ref()))
            .map(|(_, port)| port)
            .collect();
        for port in container(deployment(&children, name))
            .ports
            .iter()
            .flatten()
        {
            assert!(
                allowed.contains(&port.container_port),
                "{name} port {} is blocked",
                port.container_port
            );
        }
    }
}

#[test]
fn the_namespace_selectors_come_from_the_operator_and_empty_means_every_namespace() {
    let mut config = platform_config();
    config.network.ingress_namespace_selector =
        MatchLabels::parse("team=edge,tier=ingress").expect("parses");
    config.network.monitoring_namespace_selector = MatchLabels::default();
    let children = build(&room("{}"), &config);
    let rules = spec(&children, "lobby-chat")
        .ingress
        .as_ref()
        .expect("rules");
    let selector = |rule: &NetworkPolicyIngressRule| {
        rule.from.as_ref().expect("from")[0]
            .namespace_selector
            .clone()
            .expect("namespace selector")
    };
    assert_eq!(
        selector(&rules[0]).match_labels,
        Some(string_map(&[("team", "edge"), ("tier", "ingress")]))
    );
    // `{}`: every namespace, still no address outside the cluster.
    assert_eq!(selector(&rules[1]), Default::default());
}

#[test]
fn a_room_without_recording_mongodb_or_redis_reaches_only_dns_and_the_api_server() {
    let children = build(&room("{}"), &bare_config());
    for name in ["lobby-media", "lobby-chat"] {
        assert_eq!(
            egress_of(spec(&children, name)),
            [dns(), anywhere_on(&[443, 6443])],
            "{name}"
        );
    }
}

/// A recording room on a platform with MongoDB and Redis, every store given as CIDRs.
fn platform_with_stores() -> OperatorConfig {
    let mut config = platform_config();
    config.mongodb_secret = Some("roomcast-mongodb".to_owned());
    let network = &mut config.network;
    network.egress_api_server_cidrs = cidrs(&["172.18.0.2/32"]);
    network.egress_api_server_ports = vec![6443];
    network.egress_s3_cidrs = cidrs(&["52.95.0.0/16", "2600:1f18::/32"]);
    network.egress_mongodb_cidrs = cidrs(&["10.20.0.0/24"]);
    network.egress_redis_cidrs = cidrs(&["10.30.0.7/32"]);
    network.egress_redis_ports = vec![6380];
    config
}

#[test]
fn media_reaches_s3_and_mongodb_chat_reaches_mongodb_and_redis_at_their_configured_addresses() {
    let children = build(&room(FULL_SPEC), &platform_with_stores());
    let api_server = (strings(&["172.18.0.2/32"]), tcp(&[6443]));
    let mongodb = (strings(&["10.20.0.0/24"]), tcp(&[27017]));
    assert_eq!(
        egress_of(spec(&children, "lobby-media")),
        [
            dns(),
            api_server.clone(),
            (strings(&["52.95.0.0/16", "2600:1f18::/32"]), tcp(&[443])),
            mongodb.clone(),
        ]
    );
    assert_eq!(
        egress_of(spec(&children, "lobby-chat")),
        [
            dns(),
            api_server,
            mongodb,
            (strings(&["10.30.0.7/32"]), tcp(&[6380])),
        ]
    );
}

#[test]
fn stores_without_cidrs_are_reachable_on_their_ports_only_never_at_link_local_addresses() {
    let mut config = platform_config();
    config.mongodb_secret = Some("roomcast-mongodb".to_owned());
    let children = build(&room(FULL_SPEC), &config);
    assert_eq!(
        egress_of(spec(&children, "lobby-media")),
        [
            dns(),
            anywhere_on(&[443, 6443]),
            anywhere_on(&[443]),
            anywhere_on(&[27017]),
        ]
    );
    assert_eq!(
        egress_of(spec(&children, "lobby-chat")),
        [
            dns(),
            anywhere_on(&[443, 6443]),
            anywhere_on(&[27017]),
            anywhere_on(&[6379]),
        ]
    );
}

#[test]
fn a_tenants_s3_endpoint_never_widens_the_egress() {
    // The room names an in-cluster store on another port, listed by the operator: recording
    // may run, but the policy still allows only the platform's S3 addresses and ports (the
    // platform adds the store to `--egress-s3-cidrs/ports` when it means it).
    let spec_yaml = FULL_SPEC.replace(
        "    region: eu-west-1\n",
        "    region: eu-west-1\n    endpoint: http://10.0.0.5:9000\n",
    );
    let mut config = platform_with_stores();
    config.s3.allowed_endpoints = roomcast_operator::config::AllowedOrigins(vec![
        roomcast_operator::endpoint::parse_allowed_origin("http://10.0.0.5:9000")
            .expect("entry parses"),
    ]);
    let children = build(&room(&spec_yaml), &config);
    let media = egress_of(spec(&children, "lobby-media"));
    assert!(
        media.contains(&(strings(&["52.95.0.0/16", "2600:1f18::/32"]), tcp(&[443]))),
        "{media:?}"
    );
    for (peers, ports) in &media {
        assert!(!peers.iter().any(|p| p.starts_with("10.0.0.")), "{peers:?}");
        assert!(!ports.iter().any(|(_, p)| *p == 9000), "{ports:?}");
    }
}

#[test]
fn a_room_without_chat_has_no_chat_policy() {
    let children = build(&room("chat: {enabled: false}"), &platform_config());
    assert_eq!(names_of(&children, "NetworkPolicy"), ["lobby-media"]);
}

/// The media policy's RTMP rule, peer by peer, as YAML (namespace and pod selectors).
fn rtmp_rule(children: &[roomcast_operator::build::Child]) -> serde_json::Value {
    let rule = spec(children, "lobby-media")
        .ingress
        .iter()
        .flatten()
        .find(|r| ports_of(r.ports.as_ref()) == tcp(&[1935]))
        .expect("an RTMP rule")
        .clone();
    serde_json::to_value(rule).expect("serializes")
}

#[test]
fn behind_the_gateway_rtmp_is_admitted_only_from_the_gateway_pods_and_the_rooms_namespace() {
    let children = build(&room("{}"), &gateway_config());
    insta::assert_yaml_snapshot!(rtmp_rule(&children));
    let rule = rtmp_rule(&children);
    let peers = rule["from"].as_array().expect("peers, not anywhere");
    assert_eq!(peers.len(), 2);
    assert_eq!(
        peers[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "roomcast-system"
    );
    assert_eq!(
        peers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "ingest-gateway"
    );
    // A bare podSelector: pods of the policy's own namespace, never another tenant's.
    assert_eq!(peers[1], serde_json::json!({"podSelector": {}}));
    // HLS and metrics rules are untouched by the gateway.
    let others: Vec<_> = spec(&children, "lobby-media")
        .ingress
        .iter()
        .flatten()
        .skip(1)
        .map(ingress_summary)
        .collect();
    assert_eq!(others, served());
}

#[test]
fn a_room_exposed_as_a_service_takes_rtmp_from_anywhere_even_with_the_gateway_on() {
    for (spec_yaml, config) in [
        ("{ingest: {expose: service}}", gateway_config()),
        ("{}", platform_config()),
        ("{ingest: {expose: service}}", platform_config()),
    ] {
        let children = build(&room(spec_yaml), &config);
        assert_eq!(
            rtmp_rule(&children),
            serde_json::json!({"ports": [{"port": 1935, "protocol": "TCP"}]}),
            "{spec_yaml}"
        );
    }
}
