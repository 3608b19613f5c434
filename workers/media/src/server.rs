//! [`MediaServer`]: several rooms behind one RTMP listener and one HTTP listener. Rooms are told
//! apart by stream key on the RTMP side and by path prefix on the HTTP side; in Kubernetes the
//! server has exactly one room.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::config::{RTMP_APP, RoomConfig};
use crate::error::{Error, RefuseReason, Result};
use crate::events::{EVENT_CAPACITY, MediaEvent};
use crate::key::{PresentedKey, Secret};
use crate::metrics::Metrics;
use crate::session::Room;

/// Default x264 speed preset of encoded rungs.
pub const DEFAULT_SPEED_PRESET: &str = "veryfast";

/// Process-wide options.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub speed_preset: String,
}

/// The media worker: RTMP ingest, transcode, HLS origin for every configured room.
pub struct MediaServer {
    pub rooms: Vec<Arc<Room>>,
    pub metrics: Metrics,
    events: broadcast::Sender<MediaEvent>,
    shutting_down: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    origin_secrets: Vec<Option<Secret>>,
}

impl MediaServer {
    /// Validate every room and prepare the spool. Fails on a bad config or a missing
    /// GStreamer element.
    pub fn new(rooms: Vec<RoomConfig>, options: ServerOptions) -> Result<Arc<Self>> {
        if rooms.is_empty() {
            return Err(Error::config("rooms", "at least one room is needed"));
        }
        crate::pipeline::init()?;
        let mut seen = std::collections::BTreeSet::new();
        for r in &rooms {
            r.validate()?;
            if !seen.insert(r.path_prefix.clone()) {
                return Err(Error::config(
                    "playback.pathPrefix",
                    format!("two rooms share {}", r.path_prefix),
                ));
            }
        }
        let metrics = Metrics::default();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let mut origin_secrets = Vec::new();
        let rooms = rooms
            .into_iter()
            .map(|cfg| {
                let secret = match &cfg.origin_secret_file {
                    Some(path) => {
                        let s = Secret::from_file(path)?;
                        if s.is_empty() {
                            return Err(Error::config(
                                "playback.originSecretFile",
                                "the origin secret file is empty",
                            ));
                        }
                        Some(s)
                    }
                    None => None,
                };
                origin_secrets.push(secret);
                Ok(Arc::new(Room::new(
                    cfg,
                    options.speed_preset.clone(),
                    events.clone(),
                    metrics.clone(),
                )))
            })
            .collect::<Result<Vec<_>>>()?;
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Arc::new(MediaServer {
            rooms,
            metrics,
            events,
            shutting_down: AtomicBool::new(false),
            shutdown_tx,
            origin_secrets,
        }))
    }

    /// Session and segment events (the recorder's seam).
    pub fn subscribe(&self) -> broadcast::Receiver<MediaEvent> {
        self.events.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub(crate) fn origin_secret(&self, room: usize) -> Option<&Secret> {
        self.origin_secrets.get(room).and_then(Option::as_ref)
    }

    /// The room whose current key (read from its key file now: keys rotate) matches.
    pub fn room_for_key(&self, key: &PresentedKey) -> Option<Arc<Room>> {
        let mut found = None;
        for room in &self.rooms {
            match Secret::from_file(&room.cfg.stream_key_file) {
                // Every room is compared, so timing does not tell which one matched.
                Ok(secret) if secret.matches(key.as_bytes()) && found.is_none() => {
                    found = Some(room.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(room = %room.id(), error = %e, "cannot read the stream key")
                }
            }
        }
        found
    }

    /// Decide whether a publish may go ahead and for which room.
    pub fn authorize(&self, app: &str, key: &PresentedKey) -> Result<Arc<Room>, RefuseReason> {
        if self.is_shutting_down() {
            return Err(RefuseReason::ShuttingDown);
        }
        if app.trim_end_matches('/') != RTMP_APP {
            return Err(RefuseReason::UnknownApp);
        }
        self.room_for_key(key).ok_or(RefuseReason::WrongKey)
    }

    /// Accept publishers until shutdown.
    pub async fn serve_rtmp(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        let mut shutdown = self.shutdown_tx.subscribe();
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => r?,
                _ = shutdown.changed() => return Ok(()),
            };
            let server = self.clone();
            let rx = self.shutdown_tx.subscribe();
            tokio::spawn(crate::ingest::handle_connection(server, stream, peer, rx));
        }
    }

    /// Serve HLS, `/healthz`, `/readyz` and `/metrics` until shutdown.
    pub async fn serve_http(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        let mut shutdown = self.shutdown_tx.subscribe();
        let app = crate::http::router(self.clone());
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await
        .map_err(Error::Net)
    }

    /// Serve only `/metrics`, `/healthz`, `/readyz` (the metrics port).
    pub async fn serve_metrics(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        let mut shutdown = self.shutdown_tx.subscribe();
        let app = crate::http::ops_router(self.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await
            .map_err(Error::Net)
    }

    /// Graceful shutdown: refuse new publishers, let every pipeline close its last segment,
    /// end every session (ENDLIST), then stop the listeners. Waits at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        for room in &self.rooms {
            while room.is_live() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            room.end_all();
        }
    }

    /// Run everything until `stop` resolves, then shut down gracefully.
    pub async fn run(
        self: Arc<Self>,
        rtmp: TcpListener,
        http: TcpListener,
        metrics: Option<TcpListener>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let span = tracing::info_span!("media");
        let rtmp_task = tokio::spawn(self.clone().serve_rtmp(rtmp).instrument(span.clone()));
        let http_task = tokio::spawn(self.clone().serve_http(http).instrument(span.clone()));
        let metrics_task = metrics.map(|l| tokio::spawn(self.clone().serve_metrics(l)));
        stop.await;
        tracing::info!("shutting down: closing the last segments");
        self.shutdown(crate::pipeline::FINISH_TIMEOUT).await;
        let _ = rtmp_task.await;
        let _ = http_task.await;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        Ok(())
    }
}
