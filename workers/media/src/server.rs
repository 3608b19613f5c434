//! [`MediaServer`]: what every part of the worker shares: the rooms ([`RoomRegistry`]), the
//! metrics, the session events (the recorder's seam) and the shutdown state. The listeners that
//! serve it are in [`crate::listen`]; the HTTP routes in [`crate::origin`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::config::{MediaOptions, RoomConfig};
use crate::error::Result;
use crate::events::{EVENT_CAPACITY, MediaEvent};
use crate::limits::{ConnectionGate, ListenerLimits, OffenderLog};
use crate::metrics::Metrics;
use crate::room::registry::RoomRegistry;

/// The media worker: RTMP ingest, transcode, HLS origin for every configured room.
pub struct MediaServer {
    pub rooms: RoomRegistry,
    pub metrics: Metrics,
    events: broadcast::Sender<MediaEvent>,
    shutting_down: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    pub limits: ListenerLimits,
    pub rtmp_gate: Arc<ConnectionGate>,
    pub http_gate: Arc<ConnectionGate>,
    /// Refusals logged once per offending address.
    pub offenders: OffenderLog,
    /// Listeners whose task ended while the worker was not shutting down.
    listeners_gone: Mutex<Vec<&'static str>>,
}

/// Held by a listener's task for as long as it serves: dropping it (the task ended, returned an
/// error or panicked) while the worker is not shutting down marks the listener gone, which
/// makes `/readyz` fail.
pub struct ListenerAlive {
    server: Arc<MediaServer>,
    name: &'static str,
}

impl Drop for ListenerAlive {
    fn drop(&mut self) {
        if !self.server.is_shutting_down() {
            tracing::error!(listener = self.name, "listener stopped; not ready");
            let mut gone = self
                .server
                .listeners_gone
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            gone.push(self.name);
        }
    }
}

impl MediaServer {
    /// Validate every room and prepare the spool. Fails on a bad config or a missing
    /// GStreamer element.
    pub fn new(rooms: Vec<RoomConfig>, options: MediaOptions) -> Result<Arc<Self>> {
        crate::transcode::pipeline::init()?;
        let metrics = Metrics::default();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        options.limits.validate()?;
        let rooms = RoomRegistry::new(rooms, &options.speed_preset, &events, &metrics)?;
        let limits = options.limits;
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Arc::new(MediaServer {
            rooms,
            metrics,
            events,
            shutting_down: AtomicBool::new(false),
            shutdown_tx,
            rtmp_gate: limits.rtmp.gate(),
            http_gate: limits.http.gate(),
            limits,
            offenders: OffenderLog::default(),
            listeners_gone: Mutex::default(),
        }))
    }

    /// Mark `name` as serving until the returned guard is dropped.
    pub fn listener_alive(self: &Arc<Self>, name: &'static str) -> ListenerAlive {
        ListenerAlive {
            server: self.clone(),
            name,
        }
    }

    /// Listeners that stopped while the worker was not shutting down.
    pub fn listeners_gone(&self) -> Vec<&'static str> {
        self.listeners_gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
