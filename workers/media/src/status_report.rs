//! Live state into the room's status: live or idle, session, ingest bitrate, viewers and the
//! recorder's health, written with the `roomcast-media` field manager (see
//! `roomcast-room-status`). The operator turns it into the phase, the LIVE and VIEWERS
//! columns and the RecordingReady condition.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use roomcast_crds::MediaReport;
use roomcast_recorder::Health;
use roomcast_room_status::{StatusReporter, Throttle, now};
use tokio::sync::watch;

use crate::room::{Liveness, Room};
use crate::server::MediaServer;

/// How often the room is looked at; reports go out on change or every 30 s.
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// What the room status should say about `room` now.
pub fn media_report(
    room: &Room,
    ingest_kbps: Option<u32>,
    recording: Option<&Health>,
) -> MediaReport {
    let live = room.is_live();
    let session = match room.liveness() {
        Liveness::Session(s) => Some(s),
        Liveness::Idle => None,
    };
    MediaReport {
        live,
        session_id: session.as_ref().map(|s| s.id.clone()),
        session_started_at: session
            .as_ref()
            .and_then(|s| jiff::Timestamp::from_millisecond(s.started_at.timestamp_millis()).ok())
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        ingest_kbps: ingest_kbps.filter(|_| live),
        viewers: u32::try_from(room.viewers()).unwrap_or(u32::MAX),
        renditions: session
            .as_ref()
            .map(|s| s.rendition_names())
            .unwrap_or_default(),
        recording_healthy: recording.map(|h| h.healthy),
        recording_message: recording.filter(|h| !h.healthy).map(|h| h.message.clone()),
        reported_at: now(),
    }
}

type Significant = (
    bool,
    Option<String>,
    Vec<String>,
    Option<u32>,
    u32,
    Option<bool>,
);

/// The parts of a report whose change is worth a write (not the timestamp).
fn significant(report: &MediaReport) -> Significant {
    (
        report.live,
        report.session_id.clone(),
        report.renditions.clone(),
        // Bitrate in 100 kbit/s steps: jitter is not news.
        report.ingest_kbps.map(|k| k / 100),
        report.viewers,
        report.recording_healthy,
    )
}

/// Report `room` of `server` until the server shuts down, then report it idle.
pub async fn report_loop(
    server: Arc<MediaServer>,
    room: Arc<Room>,
    reporter: StatusReporter,
    recording: Option<watch::Receiver<Health>>,
    every: Duration,
) {
    let mut throttle = Throttle::new(roomcast_room_status::DEFAULT_HEARTBEAT);
    loop {
        let health = recording.as_ref().map(|h| h.borrow().clone());
        let kbps = server
            .metrics
            .ingest_kbps
            .get_or_create(&crate::metrics::room(room.id()))
            .get();
        let report = media_report(&room, u32::try_from(kbps).ok(), health.as_ref());
        if throttle.should_send(&significant(&report), Instant::now())
            && let Err(e) = reporter.report_media(&report).await
        {
            tracing::warn!(error = %e, "cannot report the room status");
            throttle.reset();
        }
        if server.is_shutting_down() {
            let mut last = report;
            last.live = false;
            last.ingest_kbps = None;
            last.reported_at = now();
            if let Err(e) = reporter.report_media(&last).await {
                tracing::warn!(error = %e, "cannot report the room idle at shutdown");
            }
            return;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tokio::sync::broadcast;

    use super::*;
    use crate::config::RoomConfig;
    use crate::metrics::Metrics;

    fn room() -> Room {
        let cfg = RoomConfig::for_test("lobby", PathBuf::from("/nonexistent"));
        let (events, _) = broadcast::channel(4);
        Room::new(cfg, None, "veryfast".into(), events, Metrics::default())
    }

    #[test]
    fn idle_room_reports_not_live_and_no_bitrate() {
        let report = media_report(&room(), Some(4000), None);
        assert!(!report.live);
        assert_eq!(report.session_id, None);
        assert_eq!(report.ingest_kbps, None, "no bitrate without a publisher");
        assert_eq!(
            report.recording_healthy, None,
            "no recorder, no recording field"
        );
    }

    #[test]
    fn unhealthy_recorder_is_reported_with_its_message() {
        let health = Health {
            healthy: false,
            message: "spool full (2048 MiB); segments are dropped from the recording".into(),
        };
        let report = media_report(&room(), None, Some(&health));
        assert_eq!(report.recording_healthy, Some(false));
        assert_eq!(
            report.recording_message.as_deref(),
            Some(health.message.as_str())
        );

        let healthy = Health {
            healthy: true,
            message: "ok".into(),
        };
        let report = media_report(&room(), None, Some(&healthy));
        assert_eq!(
            (report.recording_healthy, report.recording_message),
            (Some(true), None)
        );
    }

    #[test]
    fn a_live_room_reports_the_renditions_its_ladder_serves() {
        let r = room();
        let publish = r.begin_publish(1).expect("publish");
        let ladder = media_report(&r, None, None).renditions;
        assert_eq!(
            ladder,
            ["source", "720p", "360p"],
            "the whole ladder before the stream"
        );
        // The stream started and its ladder dropped the 720p rung.
        publish.session.serve(&[0, 2]);
        let report = media_report(&r, None, None);
        assert_eq!(report.renditions, ["source", "360p"]);
        assert_ne!(
            significant(&report),
            significant(&media_report(&room(), None, None)),
        );
    }

    #[test]
    fn only_meaningful_changes_count_as_news() {
        let r = room();
        let a = media_report(&r, None, None);
        let mut b = a.clone();
        b.reported_at = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(10),
        );
        assert_eq!(
            significant(&a),
            significant(&b),
            "a newer timestamp alone is not news"
        );
        b.viewers += 1;
        assert_ne!(significant(&a), significant(&b));
    }
}
