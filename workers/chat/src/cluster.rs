//! In-cluster glue (used when `POD_NAME` is set): this replica's connection count goes into
//! the room status through `roomcast-room-status` (`status.chat.replicas[pod]`), and the room's
//! live state comes from the media worker's report (`status.media.live`).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use kube::{Api, Client};
use roomcast_crds::{RoomIdentity, StreamRoom};
use roomcast_room_status::{DEFAULT_HEARTBEAT, StatusReporter, Throttle};

use crate::{presence::PresenceSink, server::ChatHandle};

/// Media reports older than this are not trusted to say the room is live.
pub const MEDIA_REPORT_MAX_AGE: Duration = Duration::from_secs(120);

/// Sends this replica's connection count when it changes, and as a heartbeat.
pub struct StatusSink {
    reporter: StatusReporter,
    throttle: Mutex<Throttle<u32>>,
}

impl StatusSink {
    pub fn new(reporter: StatusReporter) -> Self {
        Self {
            reporter,
            throttle: Mutex::new(Throttle::new(DEFAULT_HEARTBEAT)),
        }
    }

    /// Remove this replica's entry (on graceful shutdown).
    pub async fn withdraw(&self) -> Result<(), String> {
        self.reporter.withdraw().await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl PresenceSink for StatusSink {
    async fn report(&self, local_connections: u32) -> Result<(), String> {
        let due = self
            .throttle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .should_send(&local_connections, Instant::now());
        if !due {
            return Ok(());
        }
        self.reporter
            .report_chat(local_connections)
            .await
            .map_err(|e| {
                self.throttle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .reset();
                e.to_string()
            })
    }
}

/// Whether a room is live according to its media report at `now`.
pub fn is_live(room: &StreamRoom, now: jiff::Timestamp) -> bool {
    room.status
        .as_ref()
        .and_then(|s| s.media.as_ref())
        .is_some_and(|m| {
            let age = now.duration_since(m.reported_at.0).as_secs();
            m.live && u64::try_from(age).map_or(true, |age| age < MEDIA_REPORT_MAX_AGE.as_secs())
        })
}

/// Poll the room's status every `every` and pass its live state to the chat.
pub async fn follow_live_state(
    client: Client,
    handle: ChatHandle,
    room: RoomIdentity,
    every: Duration,
) {
    let api: Api<StreamRoom> = Api::namespaced(client, &room.namespace);
    loop {
        match api.get_status(&room.name).await {
            Ok(status) => {
                let live = is_live(&status, jiff::Timestamp::now());
                handle.set_live(&room.namespace, &room.name, live).await;
            }
            Err(e) => tracing::warn!(error = %e, "reading the room's live state failed"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(status: serde_json::Value) -> StreamRoom {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "roomcast.dev/v1alpha1",
            "kind": "StreamRoom",
            "metadata": {"name": "lobby", "namespace": "shows"},
            "spec": {},
            "status": status,
        }))
        .expect("room")
    }

    #[test]
    fn a_fresh_live_media_report_means_live_and_a_stale_one_does_not() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().expect("time");
        let live = |reported_at: &str, live: bool| {
            room(
                serde_json::json!({"media": {"live": live, "viewers": 0, "reportedAt": reported_at}}),
            )
        };
        assert!(is_live(&live("2026-01-01T00:09:30Z", true), now));
        assert!(!is_live(&live("2026-01-01T00:09:30Z", false), now));
        assert!(
            !is_live(&live("2026-01-01T00:05:00Z", true), now),
            "stale report"
        );
        assert!(
            !is_live(&room(serde_json::json!({})), now),
            "no media report"
        );
    }
}
