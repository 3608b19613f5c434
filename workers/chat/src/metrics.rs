//! Prometheus metrics (prefix `roomcast_chat`), labelled by room.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabels {
    pub namespace: String,
    pub room: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub namespace: String,
    pub room: String,
    pub reason: String,
}

/// Every chat metric; cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct ChatMetrics {
    pub connections: Family<RoomLabels, Gauge>,
    pub viewers: Family<RoomLabels, Gauge>,
    pub messages: Family<RoomLabels, Counter>,
    pub rejected: Family<ReasonLabels, Counter>,
    pub connects_refused: Family<ReasonLabels, Counter>,
    pub store_errors: Family<RoomLabels, Counter>,
    pub history_capped: Family<RoomLabels, Counter>,
    pub rate_limit_fallbacks: Family<RoomLabels, Counter>,
}

impl ChatMetrics {
    /// Create the metrics and register them (use a registry with prefix `roomcast_chat`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "connections",
            "Sockets connected to this replica",
            m.connections.clone(),
        );
        registry.register(
            "viewers",
            "Sockets connected to the room across all replicas",
            m.viewers.clone(),
        );
        registry.register("messages", "Messages posted", m.messages.clone());
        registry.register(
            "rejected",
            "Client requests refused, by error code",
            m.rejected.clone(),
        );
        registry.register(
            "connects_refused",
            "Connections refused, by reason",
            m.connects_refused.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store operations",
            m.store_errors.clone(),
        );
        registry.register(
            "history_capped",
            "Joins whose history was cut to the byte cap (--max-history-bytes)",
            m.history_capped.clone(),
        );
        registry.register(
            "rate_limit_fallbacks",
            "Posts rate-limited by this replica alone because Redis did not answer",
            m.rate_limit_fallbacks.clone(),
        );
        m
    }
}
