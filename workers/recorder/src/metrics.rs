//! Recorder metrics (prometheus-client), registered under the caller's prefix, e.g.
//! `roomcast_media_recorder_*`. Cheap to clone: every handle shares its value.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug)]
pub struct Metrics {
    pub segments_spooled: Counter,
    pub segments_uploaded: Counter,
    /// Segments left out of the recording, by `reason` (see [`DROP_REASONS`]).
    pub segments_dropped: Family<[(&'static str, &'static str); 1], Counter>,
    pub upload_retries: Counter,
    pub bytes_uploaded: Counter,
    pub sessions_finalized: Counter,
    pub sessions_recovered: Counter,
    pub retention_sessions_deleted: Counter,
    pub retention_objects_deleted: Counter,
    pub spool_bytes: Gauge,
    /// Seconds from [`crate::Recorder::record`] to the object being stored.
    pub upload_lag_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            segments_spooled: Counter::default(),
            segments_uploaded: Counter::default(),
            segments_dropped: Family::default(),
            upload_retries: Counter::default(),
            bytes_uploaded: Counter::default(),
            sessions_finalized: Counter::default(),
            sessions_recovered: Counter::default(),
            retention_sessions_deleted: Counter::default(),
            retention_objects_deleted: Counter::default(),
            spool_bytes: Gauge::default(),
            upload_lag_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        }
    }
}

/// Every `reason` of `segments_dropped`, pre-created so a dashboard sees zeros.
pub const DROP_REASONS: [&str; 3] = ["spool_full", "spool_write_failed", "invalid_rendition"];

impl Metrics {
    /// The `segments_dropped` counter of one reason.
    pub fn dropped(&self, reason: &'static str) -> Counter {
        self.segments_dropped
            .get_or_create(&[("reason", reason)])
            .clone()
    }

    /// Segments dropped for every reason together.
    pub fn dropped_total(&self) -> u64 {
        DROP_REASONS.iter().map(|r| self.dropped(r).get()).sum()
    }

    /// Register every metric in `registry` (use `registry.sub_registry_with_prefix("recorder")`).
    pub fn register(&self, registry: &mut Registry) {
        for reason in DROP_REASONS {
            self.dropped(reason);
        }
        registry.register(
            "segments_spooled",
            "Segments accepted into the spool",
            self.segments_spooled.clone(),
        );
        registry.register(
            "segments_uploaded",
            "Segments stored in the object store",
            self.segments_uploaded.clone(),
        );
        registry.register(
            "segments_dropped",
            "Segments left out of the recording, by reason (spool_full, spool_write_failed, invalid_rendition)",
            self.segments_dropped.clone(),
        );
        registry.register(
            "upload_retries",
            "Failed upload attempts that were retried",
            self.upload_retries.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Bytes of segments stored",
            self.bytes_uploaded.clone(),
        );
        registry.register(
            "sessions_finalized",
            "Sessions with playlists and session.json written",
            self.sessions_finalized.clone(),
        );
        registry.register(
            "sessions_recovered",
            "Sessions found in the spool at start (finalised as interrupted)",
            self.sessions_recovered.clone(),
        );
        registry.register(
            "retention_sessions_deleted",
            "Sessions deleted by the retention sweep",
            self.retention_sessions_deleted.clone(),
        );
        registry.register(
            "retention_objects_deleted",
            "Objects deleted by the retention sweep",
            self.retention_objects_deleted.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of segments waiting in the spool",
            self.spool_bytes.clone(),
        );
        registry.register(
            "upload_lag_seconds",
            "From segment close to the segment stored",
            self.upload_lag_seconds.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_the_callers_prefix() {
        let mut registry = Registry::default();
        Metrics::default().register(registry.sub_registry_with_prefix("recorder"));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        assert!(out.contains("recorder_segments_dropped_total"), "{out}");
        assert!(out.contains("recorder_upload_lag_seconds_bucket"), "{out}");
    }
}
