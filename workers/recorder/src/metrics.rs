//! Recorder metrics (prometheus-client), registered under the caller's prefix, e.g.
//! `roomcast_media_recorder_*`. Cheap to clone: every handle shares its value, which is how
//! several recorders of one process share one set of metrics (see
//! [`crate::RecorderConfig::metrics`]) and register it once: a registry that got the same
//! names twice would export them twice, which scrapers refuse.
//!
//! Everything a room's sessions cause is labelled `room="namespace/name"` (the media worker's
//! own label format), because one recorder may record several rooms (`roomcast dev`). The
//! spool is the process's, shared by every room, so `spool_bytes` has no label.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::RoomIdentity;

/// `room="namespace/name"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoomLabel {
    pub room: String,
}

impl RoomLabel {
    /// Only from a parsed room: a label is never empty nor anything but `namespace/name`.
    pub fn of(room: &RoomIdentity) -> Self {
        Self {
            room: room.to_string(),
        }
    }
}

/// Labels of `segments_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub room: String,
    pub reason: &'static str,
}

/// Every `reason` of `segments_dropped`, pre-created per room so a dashboard sees zeros.
pub const DROP_REASONS: [&str; 3] = ["spool_full", "spool_write_failed", "invalid_rendition"];

type RoomCounters = Family<RoomLabel, Counter>;

fn upload_lag_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ])
}

#[derive(Clone, Debug)]
pub struct Metrics {
    segments_spooled: RoomCounters,
    segments_uploaded: RoomCounters,
    segments_dropped: Family<DropLabels, Counter>,
    upload_retries: RoomCounters,
    bytes_uploaded: RoomCounters,
    sessions_finalized: RoomCounters,
    sessions_recovered: RoomCounters,
    retention_sessions_deleted: RoomCounters,
    retention_objects_deleted: RoomCounters,
    upload_lag_seconds: Family<RoomLabel, Histogram, fn() -> Histogram>,
    /// Bytes held by every spool of the process. Recorders move it by what they reserve and
    /// release (never set it), so recorders sharing these metrics add up instead of
    /// overwriting each other.
    pub spool_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            segments_spooled: Family::default(),
            segments_uploaded: Family::default(),
            segments_dropped: Family::default(),
            upload_retries: Family::default(),
            bytes_uploaded: Family::default(),
            sessions_finalized: Family::default(),
            sessions_recovered: Family::default(),
            retention_sessions_deleted: Family::default(),
            retention_objects_deleted: Family::default(),
            upload_lag_seconds: Family::new_with_constructor(upload_lag_histogram),
            spool_bytes: Gauge::default(),
        }
    }
}

/// The counters of one room: handles into [`Metrics`]' families, sharing their values.
#[derive(Clone, Debug)]
pub struct RoomMetrics {
    pub segments_spooled: Counter,
    pub segments_uploaded: Counter,
    pub upload_retries: Counter,
    pub bytes_uploaded: Counter,
    pub sessions_finalized: Counter,
    pub sessions_recovered: Counter,
    /// Seconds from [`crate::Recorder::record`] to the object being stored.
    pub upload_lag_seconds: Histogram,
    /// `segments_dropped` of each of [`DROP_REASONS`], in that order.
    dropped: [Counter; DROP_REASONS.len()],
}

impl RoomMetrics {
    /// The `segments_dropped` counter of one reason; `None` for a reason not in
    /// [`DROP_REASONS`].
    pub fn dropped(&self, reason: &str) -> Option<&Counter> {
        DROP_REASONS
            .iter()
            .position(|r| *r == reason)
            .map(|i| &self.dropped[i])
    }

    /// Segments of this room dropped for every reason together.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(Counter::get).sum()
    }
}

/// The retention counters of one room, apart from [`RoomMetrics`]: a sweep that deletes
/// nothing creates no series.
#[derive(Clone, Debug)]
pub struct RetentionMetrics {
    pub sessions_deleted: Counter,
    pub objects_deleted: Counter,
}

impl Metrics {
    /// The counters of `room`, created (at zero, every drop reason included) the first time a
    /// room is asked for, so dashboards see a recording room's zeros.
    pub fn room(&self, room: &RoomIdentity) -> RoomMetrics {
        let label = RoomLabel::of(room);
        let get = |family: &RoomCounters| family.get_or_create_owned(&label);
        RoomMetrics {
            segments_spooled: get(&self.segments_spooled),
            segments_uploaded: get(&self.segments_uploaded),
            upload_retries: get(&self.upload_retries),
            bytes_uploaded: get(&self.bytes_uploaded),
            sessions_finalized: get(&self.sessions_finalized),
            sessions_recovered: get(&self.sessions_recovered),
            upload_lag_seconds: self.upload_lag_seconds.get_or_create_owned(&label),
            dropped: DROP_REASONS.map(|reason| {
                self.segments_dropped.get_or_create_owned(&DropLabels {
                    room: label.room.clone(),
                    reason,
                })
            }),
        }
    }

    /// The retention counters of `room`.
    pub fn retention(&self, room: &RoomIdentity) -> RetentionMetrics {
        let label = RoomLabel::of(room);
        RetentionMetrics {
            sessions_deleted: self.retention_sessions_deleted.get_or_create_owned(&label),
            objects_deleted: self.retention_objects_deleted.get_or_create_owned(&label),
        }
    }

    /// Register every metric in `registry` (use `registry.sub_registry_with_prefix("recorder")`).
    /// Once per registry: recorders that share these metrics share the registration too.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "segments_spooled",
            "Segments accepted into the spool, by room",
            self.segments_spooled.clone(),
        );
        registry.register(
            "segments_uploaded",
            "Segments stored in the object store, by room",
            self.segments_uploaded.clone(),
        );
        registry.register(
            "segments_dropped",
            "Segments left out of the recording, by room and reason (spool_full, spool_write_failed, invalid_rendition)",
            self.segments_dropped.clone(),
        );
        registry.register(
            "upload_retries",
            "Failed uploads (segments, playlists, session.json, poster) that were retried, by room",
            self.upload_retries.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Bytes of segments stored, by room",
            self.bytes_uploaded.clone(),
        );
        registry.register(
            "sessions_finalized",
            "Sessions with playlists and session.json written, by room",
            self.sessions_finalized.clone(),
        );
        registry.register(
            "sessions_recovered",
            "Sessions found in the spool at start or left live without a spool (finalised as interrupted), by room",
            self.sessions_recovered.clone(),
        );
        registry.register(
            "retention_sessions_deleted",
            "Sessions deleted by the retention sweep, by room",
            self.retention_sessions_deleted.clone(),
        );
        registry.register(
            "retention_objects_deleted",
            "Objects deleted by the retention sweep, by room",
            self.retention_objects_deleted.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of segments waiting in the process's spools (every room)",
            self.spool_bytes.clone(),
        );
        registry.register(
            "upload_lag_seconds",
            "From segment close to the segment stored, by room",
            self.upload_lag_seconds.clone(),
        );
    }

    /// The text exposition of these metrics alone under `prefix`, as a scrape would see them.
    #[cfg(test)]
    pub(crate) fn encode(&self, prefix: &str) -> String {
        let mut registry = Registry::default();
        self.register(registry.sub_registry_with_prefix(prefix));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_the_callers_prefix() {
        let metrics = Metrics::default();
        metrics.room(&RoomIdentity::new("shows", "lobby"));
        let out = metrics.encode("recorder");
        assert!(
            out.contains(
                r#"recorder_segments_dropped_total{room="shows/lobby",reason="spool_full"} 0"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"recorder_upload_lag_seconds_bucket{le="0.01",room="shows/lobby"} 0"#),
            "{out}"
        );
        assert!(out.contains("recorder_spool_bytes 0"), "{out}");
    }

    #[test]
    fn a_room_starts_with_every_drop_reason_at_zero_and_no_retention_series() {
        let metrics = Metrics::default();
        let lobby = metrics.room(&RoomIdentity::new("shows", "lobby"));
        let out = metrics.encode("recorder");
        for reason in DROP_REASONS {
            let series = format!(
                r#"recorder_segments_dropped_total{{room="shows/lobby",reason="{reason}"}} 0"#
            );
            assert!(out.contains(&series), "{series} in {out}");
            assert_eq!(lobby.dropped(reason).map(Counter::get), Some(0));
        }
        assert!(lobby.dropped("not_a_reason").is_none());
        assert!(!out.contains("retention_sessions_deleted_total{"), "{out}");
    }
}
