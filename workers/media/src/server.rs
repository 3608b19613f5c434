//! [`MediaServer`]: what every part of the worker shares: the rooms ([`RoomRegistry`]), the
//! metrics, the session events (the recorder's seam) and the shutdown state. The listeners that
//! serve it are in [`crate::listen`]; the HTTP routes in [`crate::origin`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::config::{MediaOptions, RoomConfig};
use crate::error::Result;
use crate::events::{EVENT_CAPACITY, MediaEvent};
use crate::metrics::Metrics;
use crate::room::registry::RoomRegistry;

/// The media worker: RTMP ingest, transcode, HLS origin for every configured room.
pub struct MediaServer {
    pub rooms: RoomRegistry,
    pub metrics: Metrics,
    events: broadcast::Sender<MediaEvent>,
    shutting_down: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
}

impl MediaServer {
    /// Validate every room and prepare the spool. Fails on a bad config or a missing
    /// GStreamer element.
    pub fn new(rooms: Vec<RoomConfig>, options: MediaOptions) -> Result<Arc<Self>> {
        crate::transcode::pipeline::init()?;
        let metrics = Metrics::default();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let rooms = RoomRegistry::new(rooms, &options.speed_preset, &events, &metrics)?;
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Arc::new(MediaServer {
            rooms,
            metrics,
            events,
            shutting_down: AtomicBool::new(false),
            shutdown_tx,
        }))
    }

    /// Session and segment events (the recorder's seam).
    pub fn subscribe(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Flips to `true` when shutdown starts.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Graceful shutdown: refuse new publishers, let every pipeline close its last segment,
    /// end every session (ENDLIST), then stop the listeners. Waits at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        for room in self.rooms.iter() {
            while room.ingests.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = tokio::time::timeout_at(deadline, room.end_all()).await;
        }
    }
}
