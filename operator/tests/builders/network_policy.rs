//! The room's NetworkPolicy.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use roomcast_operator::labels;

use crate::fixtures::*;

#[test]
fn network_policy_selects_the_room_pods_and_allows_only_the_serving_ports() {
    let children = build(&room("{}"), &platform_config());
    let spec = network_policy(&children, "lobby")
        .spec
        .as_ref()
        .expect("NetworkPolicy spec");
    let selector = spec
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .expect("pod selector");
    for name in ["lobby-media", "lobby-chat"] {
        assert!(
            is_subset(selector, pod_labels(deployment(&children, name))),
            "{name} pods are not selected"
        );
    }
    assert!(
        !is_subset(
            selector,
            &string_map(&[
                (labels::NAME, "roomcast"),
                (labels::ROOM, "other-room"),
                (labels::COMPONENT, "media"),
            ])
        ),
        "another room's pods must not be selected"
    );

    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let rules = spec.ingress.as_ref().expect("ingress rules");
    assert_eq!(rules.len(), 1);
    let ports: Vec<(Option<IntOrString>, Option<&str>)> = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.port.clone(), p.protocol.as_deref()))
        .collect();
    assert_eq!(
        ports,
        [
            (Some(IntOrString::Int(1935)), Some("TCP")),
            (Some(IntOrString::Int(8080)), Some("TCP")),
            (Some(IntOrString::Int(9090)), Some("TCP")),
        ]
    );
}

#[test]
fn every_container_port_is_allowed_by_the_network_policy() {
    let children = build(&room("{}"), &platform_config());
    let allowed: Vec<i32> = network_policy(&children, "lobby")
        .spec
        .iter()
        .flat_map(|s| s.ingress.iter().flatten())
        .flat_map(|r| r.ports.iter().flatten())
        .filter_map(|p| match p.port {
            Some(IntOrString::Int(port)) => Some(port),
            _ => None,
        })
        .collect();
    for name in ["lobby-media", "lobby-chat"] {
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
