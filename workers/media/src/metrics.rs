//! Prometheus metrics, prefix `roomcast_media`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use roomcast_crds::RoomIdentity;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabels {
    pub room: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub room: String,
    pub reason: &'static str,
}

/// Labels of `refused_connections_total`: which listener, which limit.
pub use roomcast_rtmp::limits::LimitLabels;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenditionLabels {
    pub room: String,
    pub rendition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub kind: &'static str,
    pub status: u16,
}

/// Every metric the media worker exports.
#[derive(Clone)]
pub struct Metrics {
    pub publishers: Family<RoomLabels, Gauge>,
    pub sessions_started: Family<RoomLabels, Counter>,
    pub sessions_live: Family<RoomLabels, Gauge>,
    pub reconnects: Family<RoomLabels, Counter>,
    pub ingest_bytes: Family<RoomLabels, Counter>,
    pub ingest_kbps: Family<RoomLabels, Gauge>,
    /// Checks (every 5 s at most) that found the ingest above `maxBitrateKbps`.
    pub ingest_over_limit: Family<RoomLabels, Counter>,
    /// Publisher timestamps that jumped (forward past the keyframe limit, or back) and were
    /// rebased ([`crate::mux::timeline`]).
    pub ingest_timestamp_jumps: Family<RoomLabels, Counter>,
    pub publishes_refused: Family<RefusedLabels, Counter>,
    /// Connections refused or cut by a listener limit, by listener and reason.
    pub refused_connections: Family<LimitLabels, Counter>,
    pub segments: Family<RenditionLabels, Counter>,
    /// Wall clock minus media time at the close of the latest segment, in ms.
    pub transcode_lag_ms: Family<RoomLabels, Gauge>,
    pub viewers: Family<RoomLabels, Gauge>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_bytes_out: Counter,
    pub pipeline_errors: Family<RoomLabels, Counter>,
    /// The recorder's metrics (`recorder_*`), one set for every recording of the process: each
    /// recorder counts its rooms under their `room` label, and the set is registered once, by
    /// the first recording ([`crate::recording::RoomRecorder::start`]).
    pub recorder: roomcast_recorder::metrics::Metrics,
    /// Handles of the request counters every playlist and segment hit lands on, so the hot
    /// path takes no lock on the family.
    http_hot: Arc<Vec<(HttpLabels, Counter)>>,
    /// Behind a lock so that parts started after the server (the recorder) can add theirs.
    registry: Arc<std::sync::Mutex<Registry>>,
    /// Names of the sub-registries added with [`Metrics::register_part`].
    parts: Arc<std::sync::Mutex<Vec<&'static str>>>,
}

/// Request kinds of the HTTP origin, the `kind` label of `http_requests_total`, in the order of
/// `http::Kind`'s variants.
pub const HTTP_KINDS: [&str; 5] = ["master", "media", "segment", "part", "status"];

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("roomcast_media");
        let m = Metrics {
            publishers: Family::default(),
            sessions_started: Family::default(),
            sessions_live: Family::default(),
            reconnects: Family::default(),
            ingest_bytes: Family::default(),
            ingest_kbps: Family::default(),
            ingest_over_limit: Family::default(),
            ingest_timestamp_jumps: Family::default(),
            publishes_refused: Family::default(),
            refused_connections: Family::default(),
            segments: Family::default(),
            transcode_lag_ms: Family::default(),
            viewers: Family::default(),
            http_requests: Family::default(),
            http_bytes_out: Counter::default(),
            pipeline_errors: Family::default(),
            recorder: roomcast_recorder::metrics::Metrics::default(),
            http_hot: Arc::default(),
            registry: Arc::default(),
            parts: Arc::default(),
        };
        r.register("publishers", "Connected publishers", m.publishers.clone());
        r.register(
            "sessions",
            "Live sessions started",
            m.sessions_started.clone(),
        );
        r.register(
            "sessions_live",
            "Sessions live now (1 or 0 per room)",
            m.sessions_live.clone(),
        );
        r.register(
            "reconnects",
            "Publisher reconnects within the grace period",
            m.reconnects.clone(),
        );
        r.register(
            "ingest_bytes",
            "RTMP bytes received from publishers",
            m.ingest_bytes.clone(),
        );
        r.register(
            "ingest_kbps",
            "Ingest bitrate over the last seconds",
            m.ingest_kbps.clone(),
        );
        r.register(
            "ingest_over_limit",
            "Times the ingest bitrate was found above maxBitrateKbps",
            m.ingest_over_limit.clone(),
        );
        r.register(
            "ingest_timestamp_jumps",
            "Publisher timestamps that jumped forward past the keyframe limit or back, rebased",
            m.ingest_timestamp_jumps.clone(),
        );
        r.register(
            "publishes_refused",
            "Publish attempts refused, by reason",
            m.publishes_refused.clone(),
        );
        r.register(
            "refused_connections",
            "Connections refused or cut by a listener limit, by listener and reason",
            m.refused_connections.clone(),
        );
        r.register(
            "segments",
            "Segments closed, by rendition",
            m.segments.clone(),
        );
        r.register(
            "transcode_lag_ms",
            "Wall-clock time minus media time when the latest segment closed",
            m.transcode_lag_ms.clone(),
        );
        r.register(
            "viewers",
            "Distinct players that fetched a playlist in the last 30 s",
            m.viewers.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests, by kind and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_bytes_out",
            "HTTP body bytes sent",
            m.http_bytes_out.clone(),
        );
        r.register(
            "pipeline_errors",
            "Transcode pipelines that failed",
            m.pipeline_errors.clone(),
        );
        let http_hot = HTTP_KINDS
            .iter()
            .flat_map(|kind| [200, 304].map(|status| HttpLabels { kind, status }))
            .map(|labels| {
                let counter = m.http_requests.get_or_create(&labels).clone();
                (labels, counter)
            })
            .collect();
        Metrics {
            http_hot: Arc::new(http_hot),
            registry: Arc::new(std::sync::Mutex::new(r)),
            ..m
        }
    }
}

impl Metrics {
    /// Count one HTTP request.
    pub fn http_request(&self, kind: &'static str, status: u16) {
        match self
            .http_hot
            .iter()
            .find(|(l, _)| l.status == status && l.kind == kind)
        {
            Some((_, counter)) => counter.inc(),
            None => self
                .http_requests
                .get_or_create(&HttpLabels { kind, status })
                .inc(),
        };
    }

    /// Add the metrics of another part of the worker under `<prefix>_`, once per prefix: a
    /// second part with the same prefix would export the same names twice, which scrapers
    /// refuse. Returns whether `register` ran.
    pub fn register_part(
        &self,
        prefix: &'static str,
        register: impl FnOnce(&mut Registry),
    ) -> bool {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        if parts.contains(&prefix) {
            return false;
        }
        parts.push(prefix);
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        register(registry.sub_registry_with_prefix(prefix));
        true
    }

    /// Text exposition for `/metrics`.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        roomcast_runtime::ops::encode(&registry)
    }
}

/// The labels of `room`'s metrics (`room="namespace/name"`).
pub(crate) fn room(room: &RoomIdentity) -> RoomLabels {
    RoomLabels {
        room: room.to_string(),
    }
}
