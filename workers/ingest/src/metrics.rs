//! Prometheus metrics, prefix `roomcast_ingest`, registered once per [`Metrics`].

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
pub use roomcast_rtmp::limits::LimitLabels;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabels {
    pub room: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Every metric the gateway exports.
#[derive(Clone)]
pub struct Metrics {
    /// Connections accepted, by listener (`rtmp` | `rtmps`).
    pub connections: Family<ListenerLabels, Counter>,
    /// Connections or publishes refused, by listener and reason (caps, deadlines,
    /// `proxy_header`, `tls_handshake`, `key_guessing`, `unknown_key`, `backend_refused`, ...).
    pub refusals: Family<LimitLabels, Counter>,
    /// Bytes of audio, video and metadata relayed to each room's media worker.
    pub relayed_bytes: Family<RoomLabels, Counter>,
    /// Relayed bitrate of each room, over the last second or more.
    pub relay_kbps: Family<RoomLabels, Gauge>,
    /// Relays that ended on the backend's side, by reason.
    pub relay_errors: Family<ReasonLabels, Counter>,
    pub tls_handshake_failures: Family<ListenerLabels, Counter>,
    /// Certificate/key pairs re-read and put in use, and those refused (the last good one stays).
    pub tls_reloads: Counter,
    pub tls_reload_errors: Counter,
    /// Routing tables (or routing keys) loaded, and those refused (the last good one stays).
    pub route_reloads: Counter,
    pub route_errors: Counter,
    pub active_relays: Gauge,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("roomcast_ingest");
        let m = Metrics {
            connections: Family::default(),
            refusals: Family::default(),
            relayed_bytes: Family::default(),
            relay_kbps: Family::default(),
            relay_errors: Family::default(),
            tls_handshake_failures: Family::default(),
            tls_reloads: Counter::default(),
            tls_reload_errors: Counter::default(),
            route_reloads: Counter::default(),
            route_errors: Counter::default(),
            active_relays: Gauge::default(),
            registry: Arc::new(Registry::default()),
        };
        registry.register(
            "connections",
            "Connections accepted, by listener",
            m.connections.clone(),
        );
        registry.register(
            "refusals",
            "Connections or publishes refused, by listener and reason",
            m.refusals.clone(),
        );
        registry.register(
            "relayed_bytes",
            "Bytes relayed to the room's media worker",
            m.relayed_bytes.clone(),
        );
        registry.register(
            "relay_kbps",
            "Relayed bitrate per room",
            m.relay_kbps.clone(),
        );
        registry.register(
            "relay_errors",
            "Relays ended by the backend side, by reason",
            m.relay_errors.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate/key pairs loaded",
            m.tls_reloads.clone(),
        );
        registry.register(
            "tls_reload_errors",
            "Certificate/key pairs refused (the last good pair stays in use)",
            m.tls_reload_errors.clone(),
        );
        registry.register(
            "route_reloads",
            "Routing tables or routing keys loaded",
            m.route_reloads.clone(),
        );
        registry.register(
            "route_errors",
            "Routing tables or routing keys refused (the last good one stays in use)",
            m.route_errors.clone(),
        );
        registry.register(
            "active_relays",
            "Publishers relayed right now",
            m.active_relays.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }
}

impl Metrics {
    /// OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        roomcast_runtime::ops::encode(&self.registry)
    }

    pub fn relay_error(&self, reason: &'static str) {
        self.relay_errors
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

pub fn room(room: &str) -> RoomLabels {
    RoomLabels {
        room: room.to_owned(),
    }
}
