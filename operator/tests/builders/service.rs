//! The RTMP, HLS and chat Services.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use roomcast_operator::config::OperatorConfig;

use crate::fixtures::*;

#[test]
fn services_select_the_pods_of_the_deployment_they_front() {
    let children = build(&room("{}"), &platform_config());
    let media = pod_labels(deployment(&children, "lobby-media"));
    let chat = pod_labels(deployment(&children, "lobby-chat"));
    for (name, fronted, other) in [
        ("lobby-rtmp", media, chat),
        ("lobby-hls", media, chat),
        ("lobby-chat", chat, media),
    ] {
        let selector = service(&children, name)
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .expect("Service has a selector");
        assert!(!selector.is_empty(), "{name}");
        assert!(
            is_subset(selector, fronted),
            "{name} selector {selector:?} misses its pods {fronted:?}"
        );
        assert!(
            !is_subset(selector, other),
            "{name} selector {selector:?} also selects {other:?}"
        );
    }
}

#[test]
fn rtmp_service_is_exposed_as_the_operator_chooses_and_the_http_services_stay_internal() {
    let config = OperatorConfig {
        ingest_service_type: roomcast_operator::config::IngestServiceType::NodePort,
        ..platform_config()
    };
    let children = build(&room("{}"), &config);
    let service_type = |name: &str| {
        service(&children, name)
            .spec
            .as_ref()
            .and_then(|s| s.type_.clone())
    };
    assert_eq!(service_type("lobby-rtmp").as_deref(), Some("NodePort"));
    assert_eq!(service_type("lobby-hls").as_deref(), Some("ClusterIP"));
    assert_eq!(service_type("lobby-chat").as_deref(), Some("ClusterIP"));

    let default_type = build(&room("{}"), &platform_config());
    assert_eq!(
        service(&default_type, "lobby-rtmp")
            .spec
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
}

#[test]
fn service_ports_target_named_container_ports_that_exist() {
    let children = build(&room("{}"), &platform_config());
    for (service_name, deployment_name, port, target) in [
        ("lobby-rtmp", "lobby-media", 1935, "rtmp"),
        ("lobby-hls", "lobby-media", 80, "http"),
        ("lobby-chat", "lobby-chat", 80, "http"),
    ] {
        let ports = service(&children, service_name)
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        assert_eq!(ports.len(), 1, "{service_name}");
        assert_eq!(ports[0].port, port, "{service_name}");
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String(target.to_owned())),
            "{service_name}"
        );
        assert!(
            container(deployment(&children, deployment_name))
                .ports
                .iter()
                .flatten()
                .any(|p| p.name.as_deref() == Some(target)),
            "{deployment_name} has no port named {target}"
        );
    }
}

#[test]
fn behind_the_gateway_the_rtmp_service_stays_in_cluster_whatever_the_platform_type() {
    let rtmp_type = |spec: &str, config: &OperatorConfig| {
        let children = build(&room(spec), config);
        service(&children, "lobby-rtmp")
            .spec
            .as_ref()
            .and_then(|s| s.type_.clone())
    };
    // The platform's type is LoadBalancer: a room behind the gateway must not get one.
    let gateway = gateway_config();
    assert_eq!(rtmp_type("{}", &gateway).as_deref(), Some("ClusterIP"));
    assert_eq!(
        rtmp_type("{ingest: {expose: gateway}}", &gateway).as_deref(),
        Some("ClusterIP")
    );
    assert_eq!(
        rtmp_type("{ingest: {expose: service}}", &gateway).as_deref(),
        Some("LoadBalancer")
    );
}
