//! The recorder runtime in four stages, one file each, wired together by [`Recorder`]:
//!
//! ```text
//!  Recorder::record ──Cmd──> writer ──Job──> uploader ──> finaliser
//!                            (spool)         (store, retries)  (playlists, session.json,
//!                                              ^                catalog completion)
//!  Recorder::start ──> recovery ──Job──────────┘                  ^
//!  Recorder::finalise_orphans ──> recovery ───────────────────────┘
//! ```
//!
//! `state` holds what every stage shares (settings, spool budget, health, retrying writes).
//! Imports only go down the picture: no stage imports this module or an earlier stage.

mod finaliser;
mod recovery;
mod state;
mod uploader;
mod writer;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use backon::Retryable;
use tokio::{
    sync::{broadcast, mpsc, oneshot, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

pub use state::{Health, UPLOADED_CAPACITY, Uploaded};

use crate::{
    DynCatalog, DynStore, Result, config::RecorderConfig, events::RecordEvent, metrics::Metrics,
    spool::Spool,
};
use state::Shared;
use writer::Cmd;

/// Records sessions. Dropping it stops everything at once (like a crash: what is spooled stays
/// for the next start); [`Recorder::flush`] first for a graceful stop.
pub struct Recorder {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Cmd>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Recorder {
    /// Open the spool, queue what a previous run left in it (finalised as `interrupted` unless
    /// it had ended), and start the background tasks.
    pub async fn start(
        mut cfg: RecorderConfig,
        store: DynStore,
        catalog: DynCatalog,
    ) -> Result<Self> {
        let spool = Spool::open(&cfg.spool_dir)?;
        // Never more than the spool's filesystem can hold, whatever the volume claims.
        let room = spool.room();
        let budget = cfg
            .spool_size_bytes
            .min(room.map_or(u64::MAX, crate::config::budget_share));
        if budget < cfg.spool_size_bytes {
            warn!(
                configured_mib = cfg.spool_size_bytes >> 20,
                budget_mib = budget >> 20,
                "the spool's filesystem has less room than the configured budget; budget lowered"
            );
        }
        cfg.spool_size_bytes = budget;
        let shared = Arc::new(Shared::new(cfg, spool, store, catalog));
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        recovery::recover(&shared, &jobs_tx).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(writer::run(shared.clone(), rx, jobs_tx)),
            tokio::spawn(uploader::run(shared.clone(), jobs_rx)),
        ];
        info!(store = %shared.store.describe(), spool = %shared.spool.dir().display(), "recorder started");
        Ok(Self { shared, tx, tasks })
    }

    /// Hand over one event. Never blocks and never fails: a segment that does not fit in the
    /// spool is dropped from the recording (counted, logged, and reported by [`Self::health`]).
    pub fn record(&self, event: RecordEvent) {
        if let RecordEvent::SegmentClosed {
            room,
            rendition,
            bytes,
            session_id,
            seq,
            ..
        } = &event
        {
            if !self.shared.cfg.records(rendition) {
                return;
            }
            if !self.shared.reserve(bytes.len() as u64) {
                // A room that does not parse is ignored by the writer anyway; left uncounted
                // here, it never becomes a label either.
                match crate::parse_room(room) {
                    Ok(room) => {
                        self.shared
                            .drop_segment(&room, session_id, rendition, *seq, "spool_full");
                    }
                    Err(e) => warn!(error = %e, "segment of an invalid room ignored"),
                }
                return;
            }
        }
        if self
            .tx
            .send(Cmd::Event(Box::new(event), Instant::now()))
            .is_err()
        {
            warn!("recorder stopped; event ignored");
        }
    }

    /// Wait until everything recorded before this call is spooled, stored and (for ended
    /// sessions) finalised. Waits for as long as the store is unreachable.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn health(&self) -> watch::Receiver<Health> {
        self.shared.health.subscribe()
    }

    pub fn subscribe_uploads(&self) -> broadcast::Receiver<Uploaded> {
        self.shared.uploaded.subscribe()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Finalise sessions of `room` that the catalog lists as `live` but that the spool does not
    /// hold: their worker died and its spool was lost with it (the pod moved to another node).
    /// Each becomes `interrupted` with VOD playlists of the segments found in the store; the
    /// exact durations went with the spool, so each segment is taken to last `nominal` (the
    /// room's segment length). Call once after [`Recorder::start`], before the room's first
    /// event. Returns how many sessions it finalised.
    pub async fn finalise_orphans(&self, room: &str, nominal: Duration) -> Result<u64> {
        recovery::finalise_orphans(&self.shared, room, nominal).await
    }

    /// [`Self::finalise_orphans`] retried with backoff until the catalog and the store answer:
    /// how a worker starts live-first. Meanwhile [`Self::health`] is unhealthy with the reason,
    /// and sessions record into the spool as usual (uploads retry on their own); this may run
    /// while they do. Returns how many sessions it finalised.
    pub async fn finalise_orphans_retrying(&self, room: &str, nominal: Duration) -> u64 {
        let shared = &self.shared;
        let finalised = (|| recovery::finalise_orphans(shared, room, nominal))
            .retry(shared.retry_policy())
            .when(|e| !matches!(e, crate::Error::Key(_) | crate::Error::Name(_)))
            .notify(|e, delay| {
                shared.connect_failed(e);
                warn!(room, error = %e, retry_in = ?delay, "store or catalog unreachable at start; retrying");
            })
            .await;
        shared.connected();
        match finalised {
            Ok(n) => n,
            Err(e) => {
                warn!(room, error = %e, "orphaned sessions not finalised");
                0
            }
        }
    }

    /// Bytes of segments the spool may hold (see [`crate::config::spool_budget`]).
    pub fn spool_budget(&self) -> u64 {
        self.shared.cfg.spool_size_bytes
    }

    /// Bytes held by the spool (queued or on disk).
    pub fn spool_bytes(&self) -> u64 {
        self.shared.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
