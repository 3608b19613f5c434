//! The recorder seam: session and segment events of [`crate::MediaServer`] (the recorder's own
//! event type), handed to `roomcast-recorder` as they are by a [`RoomRecorder`]. Recording never
//! slows ingest: `Recorder::record` only queues, and a forwarder that falls behind the broadcast
//! channel loses events from the recording (counted by the recorder as missing segments), never
//! from the live stream.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use roomcast_crds::RoomIdentity;
use roomcast_recorder::{
    DynCatalog, DynStore, Recorder, RecorderConfig,
    api::ApiState,
    poster::{DynPosterMaker, FfmpegPoster},
    retention,
};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::{server::MediaServer, transcode::poster::GstPoster};

/// The poster maker a recording gets when its config names none: GStreamer, which the worker
/// links anyway and the runtime image ships (jpegenc, tsdemux, qtdemux), else ffmpeg where installed,
/// else none (sessions are recorded without `poster.jpg`).
pub fn default_poster() -> Option<DynPosterMaker> {
    if let Some(gst) = GstPoster::detect() {
        return Some(Arc::new(gst));
    }
    tracing::info!(
        "GStreamer lacks a poster element (tsdemux, jpegenc, ...); trying ffmpeg for poster frames"
    );
    FfmpegPoster::detect().map(|p| Arc::new(p) as DynPosterMaker)
}

/// Forward the events of `rooms` (`namespace/name`) to `recorder` until the server's event
/// channel closes.
pub fn forward(
    server: &MediaServer,
    recorder: Arc<Recorder>,
    rooms: BTreeSet<String>,
) -> JoinHandle<()> {
    let mut events = server.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if rooms.contains(event.room()) {
                        recorder.record(event);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "recording fell behind the media events; segments are missing from the recording"
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

/// A room whose sessions a [`RoomRecorder`] keeps.
#[derive(Clone, Debug)]
pub struct RecordedRoom {
    pub id: RoomIdentity,
    /// Where the room's HTTP paths start (`/<namespace>/<room>`): the replay API goes under it.
    pub path_prefix: String,
    pub segment_seconds: u32,
    pub retention_days: Option<u32>,
}

impl RecordedRoom {
    pub fn of(worker: &roomcast_crds::worker_config::WorkerConfig) -> Self {
        Self {
            id: worker.room.clone(),
            path_prefix: worker.playback.path_prefix.clone(),
            segment_seconds: worker.transcode.segment_seconds,
            retention_days: worker.recording.as_ref().and_then(|r| r.retention_days),
        }
    }
}

/// The recorder of a media server's rooms (the recorder crate's `Recording` is one stored
/// session; this is what records them): the recorder fed by the server's events, retention
/// sweeps, and the replay API routes (`<prefix>/recordings…`) to serve next to HLS. Both the
/// in-cluster worker and `roomcast dev` run it; they only choose the store and catalog.
pub struct RoomRecorder {
    pub recorder: Arc<Recorder>,
    /// The replay API of every recorded room.
    pub routes: axum::Router,
    forwarder: JoinHandle<()>,
    /// Retention sweeps and the start-up orphan finalisation.
    retention: Vec<JoinHandle<()>>,
}

impl RoomRecorder {
    /// Start recording `rooms` of `server`. Nothing here waits on the network: sessions a
    /// previous process left in the spool are queued again, and `live` sessions whose spool
    /// was lost are finalised in the background once the store and catalog answer (retried
    /// with backoff; [`Recorder::health`] says why meanwhile). A poster maker is added when the
    /// config has none (see [`default_poster`]).
    pub async fn start(
        server: &MediaServer,
        rooms: &[RecordedRoom],
        mut config: RecorderConfig,
        store: DynStore,
        catalog: DynCatalog,
    ) -> Result<Self, roomcast_recorder::Error> {
        if config.poster.is_none() {
            config.poster = default_poster();
        }
        // Every recorder of the process counts into the server's one set of recorder metrics
        // (rooms apart by their label), on /metrics as roomcast_media_recorder_*. The first
        // recording registers it; for the next ones `register_part` has nothing left to do.
        config.metrics = server.metrics.recorder.clone();
        let recorder = Arc::new(Recorder::start(config, store.clone(), catalog.clone()).await?);
        server
            .metrics
            .register_part("recorder", |r| server.metrics.recorder.register(r));
        let mut routes = axum::Router::new();
        let mut retention = Vec::new();
        for room in rooms {
            // The room's series exist from the start, zeros before its first session.
            recorder.metrics().room(&room.id);
            // Live first: the store and catalog may not answer yet. Sessions record into the
            // spool meanwhile; health says why recording is degraded until they answer.
            let (settling, id) = (recorder.clone(), room.id.to_string());
            let nominal = Duration::from_secs(u64::from(room.segment_seconds));
            retention.push(tokio::spawn(async move {
                settling.finalise_orphans_retrying(&id, nominal).await;
            }));
            if let Some(days) = room.retention_days {
                retention.push(retention::spawn(
                    store.clone(),
                    catalog.clone(),
                    room.id.to_string(),
                    days,
                    roomcast_recorder::config::DEFAULT_RETENTION_INTERVAL,
                    recorder.metrics().clone(),
                ));
            }
            // The replay API takes the same origin secret as the room's HLS routes.
            let origin_secret = server
                .rooms
                .get(&room.id)
                .and_then(|r| r.origin_secret().cloned());
            let api = roomcast_recorder::api::router(ApiState {
                catalog: catalog.clone(),
                store: store.clone(),
                room: room.id.to_string(),
                origin_secret,
            });
            routes = routes.nest(&room.path_prefix, api);
        }
        let forwarder = forward(
            server,
            recorder.clone(),
            rooms.iter().map(|r| r.id.to_string()).collect(),
        );
        Ok(Self {
            recorder,
            routes,
            forwarder,
            retention,
        })
    }

    /// After the server has shut down: let the last sessions' end events arrive, then wait (at
    /// most `timeout`) for everything to be stored and finalised. What does not make it stays
    /// in the spool and is finalised as interrupted by the next start.
    pub async fn finish(self, timeout: Duration) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if tokio::time::timeout(timeout, self.recorder.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "recordings not finalised in time; the next start finishes them as interrupted"
            );
        }
        self.forwarder.abort();
        for task in self.retention {
            task.abort();
        }
    }
}
