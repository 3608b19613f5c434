use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};
use roomcast_crds::worker_config::RTMP_PORT;

use crate::{
    config::{IngestServiceType, OperatorConfig},
    labels::Component,
    validate::ValidRoom,
};

pub const RTMP_SUFFIX: &str = "rtmp";
pub const HLS_SUFFIX: &str = "hls";
pub const CHAT_SUFFIX: &str = "chat";

fn port(name: &str, port: i32, target: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(target.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// `<room>-rtmp`: what streamers publish to, exposed as the platform chose. Behind the
/// ingest gateway it stays ClusterIP: the gateway relays to it, in-cluster publishers use it
/// directly, and no room pays for a load balancer of its own.
pub fn build_rtmp_service(room: &ValidRoom, config: &OperatorConfig) -> Service {
    let type_ = if room.through_gateway {
        IngestServiceType::ClusterIp
    } else {
        config.ingest_service_type
    };
    Service {
        metadata: room.room.meta(RTMP_SUFFIX, Component::Media),
        spec: Some(ServiceSpec {
            type_: Some(type_.as_str().to_owned()),
            selector: Some(room.room.selector_labels(Component::Media)),
            ports: Some(vec![port("rtmp", i32::from(RTMP_PORT), "rtmp")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<room>-hls`: the HLS origin behind the Ingress (live, DVR and recordings).
pub fn build_hls_service(room: &ValidRoom) -> Service {
    cluster_ip(room, HLS_SUFFIX, Component::Media)
}

/// `<room>-chat`: the socket.io endpoint behind the Ingress.
pub fn build_chat_service(room: &ValidRoom) -> Service {
    cluster_ip(room, CHAT_SUFFIX, Component::Chat)
}

fn cluster_ip(room: &ValidRoom, suffix: &str, component: Component) -> Service {
    Service {
        metadata: room.room.meta(suffix, component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(room.room.selector_labels(component)),
            ports: Some(vec![port("http", 80, "http")]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
