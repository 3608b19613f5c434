//! Two Ingresses per room, on purpose: the media one must stay CDN-cacheable (no session
//! cookies, short playlist caching), the chat one needs sticky sessions for socket.io's
//! polling fallback and long websocket timeouts. One object could not have both.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::service::{CHAT_SUFFIX, HLS_SUFFIX};
use crate::{labels::Component, validate::ValidRoom};

/// ingress-nginx annotation prefix (other controllers ignore these).
const NGINX: &str = "nginx.ingress.kubernetes.io";

fn ingress(
    room: &ValidRoom,
    host: &str,
    name_suffix: Option<&str>,
    component: Component,
    path: String,
    service: String,
    annotations: BTreeMap<String, String>,
) -> Ingress {
    let mut metadata = room.room.meta(name_suffix.unwrap_or_default(), component);
    if name_suffix.is_none() {
        metadata.name = Some(room.room.name.clone());
    }
    metadata.annotations = Some(annotations);
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: room.ingress_class.clone(),
            tls: room.spec.playback.tls_secret_ref.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: Some(vec![host.to_owned()]),
                    secret_name: Some(tls.name.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(host.to_owned()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(path),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: service,
                                port: Some(ServiceBackendPort {
                                    name: Some("http".to_owned()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

/// `<room>`: `/<namespace>/<room>/…` (live HLS, DVR, recordings) to the media origin. The
/// origin sets `Cache-Control` itself (`spec.playback.cdn`); the annotations record the
/// policy for CDN configuration and keep responses cacheable through the controller.
pub fn build_media_ingress(room: &ValidRoom) -> Option<Ingress> {
    let host = room.host.as_deref()?;
    let cdn = &room.spec.playback.cdn;
    let annotations = BTreeMap::from([
        (format!("{NGINX}/proxy-read-timeout"), "30".to_owned()),
        (
            "roomcast.dev/playlist-max-age-seconds".to_owned(),
            cdn.playlist_max_age_seconds.to_string(),
        ),
        (
            "roomcast.dev/segment-max-age-seconds".to_owned(),
            cdn.segment_max_age_seconds.to_string(),
        ),
        (
            "roomcast.dev/origin-protected".to_owned(),
            cdn.origin_secret_ref.is_some().to_string(),
        ),
    ]);
    Some(ingress(
        room,
        host,
        None,
        Component::Media,
        room.path_prefix(),
        room.room.child(HLS_SUFFIX),
        annotations,
    ))
}

/// `<room>-chat`: `/<namespace>/<room>/chat` to the chat replicas, sticky and long-lived.
pub fn build_chat_ingress(room: &ValidRoom) -> Option<Ingress> {
    let host = room.host.as_deref().filter(|_| room.spec.chat.enabled)?;
    let path = format!("{}/chat", room.path_prefix());
    let annotations = BTreeMap::from([
        (format!("{NGINX}/proxy-read-timeout"), "3600".to_owned()),
        (format!("{NGINX}/proxy-send-timeout"), "3600".to_owned()),
        (format!("{NGINX}/affinity"), "cookie".to_owned()),
        (
            format!("{NGINX}/session-cookie-name"),
            "roomcast-chat".to_owned(),
        ),
        (format!("{NGINX}/session-cookie-path"), path.clone()),
    ]);
    Some(ingress(
        room,
        host,
        Some(CHAT_SUFFIX),
        Component::Chat,
        path,
        room.room.child(CHAT_SUFFIX),
        annotations,
    ))
}
