//! Live state into the room's status (`status.media`), through `roomcast-room-status`'s
//! reporter (server-side apply, field manager `roomcast-media`). Reports go out when they change
//! or as a heartbeat; the pure part ([`media_report`], [`throttle_key`]) is tested here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use roomcast_crds::MediaReport;
use roomcast_room_status::{DEFAULT_HEARTBEAT, StatusReporter, Throttle};
use tokio::sync::watch;

use crate::server::MediaServer;
use crate::session::LiveState;

/// How often the live state is looked at.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

fn time(t: DateTime<Utc>) -> Option<Time> {
    let nanos = t.timestamp_nanos_opt()?;
    jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .ok()
        .map(Time)
}

/// The status report for a live state.
pub fn media_report(state: &LiveState, reported_at: Time) -> MediaReport {
    MediaReport {
        live: state.live,
        session_id: state.session_id.clone(),
        session_started_at: state.session_started_at.and_then(time),
        ingest_kbps: state.ingest_kbps,
        viewers: state.viewers,
        recording_healthy: None,
        recording_message: None,
        reported_at,
    }
}

/// What must change for a report to go out before the heartbeat: the bitrate only in 250 kbit/s
/// steps, so a wobbling encoder does not patch the API server every few seconds.
pub fn throttle_key(state: &LiveState) -> LiveState {
    LiveState {
        ingest_kbps: state.ingest_kbps.map(|k| k / 250 * 250),
        ..state.clone()
    }
}

/// Report every room's state until `stop` flips; then withdraw the reports.
pub async fn run(
    server: Arc<MediaServer>,
    reporters: Vec<StatusReporter>,
    mut stop: watch::Receiver<bool>,
) {
    let mut throttles: Vec<Throttle<LiveState>> = reporters
        .iter()
        .map(|_| Throttle::new(DEFAULT_HEARTBEAT))
        .collect();
    let mut tick = tokio::time::interval(REPORT_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        for ((room, reporter), throttle) in server.rooms.iter().zip(&reporters).zip(&mut throttles)
        {
            let state = room.live_state();
            if !throttle.should_send(&throttle_key(&state), Instant::now()) {
                continue;
            }
            let report = media_report(&state, roomcast_room_status::now());
            if let Err(e) = reporter.report_media(&report).await {
                tracing::warn!(room = %room.id(), error = %e, "status report failed");
                throttle.reset();
            }
        }
    }
    for reporter in &reporters {
        let _ = reporter.withdraw().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn state() -> LiveState {
        LiveState {
            live: true,
            session_id: Some("s-1".into()),
            session_started_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single(),
            ingest_kbps: Some(2_480),
            viewers: 7,
        }
    }

    #[test]
    fn report_carries_the_live_state() {
        let report = media_report(&state(), roomcast_room_status::now());
        assert!(report.live);
        assert_eq!(report.session_id.as_deref(), Some("s-1"));
        assert_eq!(report.viewers, 7);
        assert_eq!(report.ingest_kbps, Some(2_480));
        let started = report.session_started_at.expect("started");
        assert_eq!(started.0.to_string(), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn small_bitrate_changes_do_not_force_a_report() {
        let mut other = state();
        other.ingest_kbps = Some(2_400);
        assert_eq!(throttle_key(&state()), throttle_key(&other));
        other.ingest_kbps = Some(2_600);
        assert_ne!(throttle_key(&state()), throttle_key(&other));
        other = state();
        other.viewers = 8;
        assert_ne!(throttle_key(&state()), throttle_key(&other));
    }
}
