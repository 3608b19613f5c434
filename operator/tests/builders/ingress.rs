//! The media and chat Ingresses.

use k8s_openapi::api::networking::v1::Ingress;
use roomcast_operator::config::OperatorConfig;

use crate::fixtures::*;

/// `[host, path, pathType, service, service port name]` of the only rule of an Ingress.
fn only_route(ingress: &Ingress) -> [String; 5] {
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .expect("rules");
    assert_eq!(rules.len(), 1);
    let paths = &rules[0].http.as_ref().expect("http rule").paths;
    assert_eq!(paths.len(), 1);
    let backend = paths[0].backend.service.as_ref().expect("service backend");
    [
        rules[0].host.clone().unwrap_or_default(),
        paths[0].path.clone().unwrap_or_default(),
        paths[0].path_type.clone(),
        backend.name.clone(),
        backend
            .port
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_default(),
    ]
}

fn ingress_annotation<'a>(ingress: &'a Ingress, key: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn tls_of(ingress: &Ingress) -> Option<Vec<(Vec<String>, String)>> {
    ingress.spec.as_ref()?.tls.as_ref().map(|tls| {
        tls.iter()
            .map(|t| {
                (
                    t.hosts.clone().unwrap_or_default(),
                    t.secret_name.clone().unwrap_or_default(),
                )
            })
            .collect()
    })
}

fn class_of(ingress: &Ingress) -> Option<&str> {
    ingress.spec.as_ref()?.ingress_class_name.as_deref()
}

#[test]
fn media_ingress_routes_the_room_prefix_to_the_hls_service() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let media = ingress(&children, "lobby");
    assert_eq!(
        only_route(media),
        [
            "tv.example.org",
            "/shows/lobby",
            "Prefix",
            "lobby-hls",
            "http"
        ]
    );
    assert_eq!(class_of(media), Some("nginx"));
    assert_eq!(
        tls_of(media),
        Some(vec![(
            vec!["tv.example.org".to_owned()],
            "tv-tls".to_owned()
        )])
    );
    // The backend port name exists on the Service it points at.
    let hls = service(&children, "lobby-hls");
    assert!(
        hls.spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .any(|p| p.name.as_deref() == Some("http"))
    );
}

#[test]
fn chat_ingress_routes_the_chat_path_to_the_chat_service() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let chat = ingress(&children, "lobby-chat");
    assert_eq!(
        only_route(chat),
        [
            "tv.example.org",
            "/shows/lobby/chat",
            "Prefix",
            "lobby-chat",
            "http"
        ]
    );
    assert_eq!(class_of(chat), Some("nginx"));
    assert_eq!(
        tls_of(chat),
        Some(vec![(
            vec!["tv.example.org".to_owned()],
            "tv-tls".to_owned()
        )])
    );
}

#[test]
fn only_the_chat_ingress_is_sticky_with_long_timeouts() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let chat = ingress(&children, "lobby-chat");
    let media = ingress(&children, "lobby");
    let nginx = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");

    assert_eq!(ingress_annotation(chat, &nginx("affinity")), Some("cookie"));
    assert_eq!(
        ingress_annotation(chat, &nginx("session-cookie-path")),
        Some("/shows/lobby/chat")
    );
    assert_eq!(
        ingress_annotation(chat, &nginx("proxy-read-timeout")),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(chat, &nginx("proxy-send-timeout")),
        Some("3600")
    );

    assert_eq!(ingress_annotation(media, &nginx("affinity")), None);
    assert_eq!(
        ingress_annotation(media, &nginx("session-cookie-name")),
        None
    );
    assert_ne!(
        ingress_annotation(media, &nginx("proxy-read-timeout")),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(media, &nginx("proxy-send-timeout")),
        None
    );
}

#[test]
fn cdn_max_age_annotations_follow_the_playback_cdn_spec() {
    let children = build(&room(FULL_SPEC), &platform_config());
    let media = ingress(&children, "lobby");
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/playlist-max-age-seconds"),
        Some("2")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/segment-max-age-seconds"),
        Some("3600")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/origin-protected"),
        Some("true")
    );

    let defaults = build(&room("{}"), &platform_config());
    let media = ingress(&defaults, "lobby");
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/playlist-max-age-seconds"),
        Some("1")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/segment-max-age-seconds"),
        Some("86400")
    );
    assert_eq!(
        ingress_annotation(media, "roomcast.dev/origin-protected"),
        Some("false")
    );
}

#[test]
fn room_without_any_host_gets_no_ingress() {
    let children = build(&room("{}"), &bare_config());
    assert!(names_of(&children, "Ingress").is_empty());
    // Everything else is still there.
    assert!(find(&children, "Service", "lobby-hls").is_some());
    assert!(find(&children, "Deployment", "lobby-chat").is_some());
}

#[test]
fn operator_default_host_and_class_apply_when_the_room_sets_none() {
    let config = OperatorConfig {
        playback_host: Some("streams.example.net".to_owned()),
        ingress_class: Some("public".to_owned()),
        ..bare_config()
    };
    let children = build(&room("{}"), &config);
    assert_eq!(names_of(&children, "Ingress"), ["lobby", "lobby-chat"]);
    for name in ["lobby", "lobby-chat"] {
        let i = ingress(&children, name);
        assert_eq!(only_route(i)[0], "streams.example.net", "{name}");
        assert_eq!(class_of(i), Some("public"), "{name}");
        assert_eq!(tls_of(i), None, "{name}: no tlsSecretRef, no TLS");
    }
}

#[test]
fn room_host_and_class_beat_the_operator_defaults() {
    let config = OperatorConfig {
        playback_host: Some("streams.example.net".to_owned()),
        ingress_class: Some("public".to_owned()),
        ..bare_config()
    };
    let children = build(
        &room("playback: {host: tv.example.org, ingressClassName: nginx}"),
        &config,
    );
    for name in ["lobby", "lobby-chat"] {
        let i = ingress(&children, name);
        assert_eq!(only_route(i)[0], "tv.example.org", "{name}");
        assert_eq!(class_of(i), Some("nginx"), "{name}");
    }
}

#[test]
fn ingress_without_any_class_leaves_the_class_to_the_cluster_default() {
    let children = build(&room("playback: {host: tv.example.org}"), &bare_config());
    assert_eq!(class_of(ingress(&children, "lobby")), None);
}
