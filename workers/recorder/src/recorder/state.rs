//! What every stage shares: the settings, the spool and its byte budget, the store and catalog
//! with retrying writes, the health report and the upload notifications.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

use crate::{
    DynCatalog, DynStore, Error, Recording, Result, RoomIdentity, config::RecorderConfig,
    metrics::Metrics, spool::Spool, store::content_type,
};

const MIB: u64 = 1024 * 1024;

/// Bytes as the `spool_bytes` gauge counts them (i64; no spool comes near the limit).
fn gauge_bytes(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Capacity of [`super::Recorder::subscribe_uploads`].
pub const UPLOADED_CAPACITY: usize = 1024;

/// Whether recording works; the media worker reports it as the room's RecordingReady condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub message: String,
}

/// A segment that reached the object store.
#[derive(Clone, Debug)]
pub struct Uploaded {
    pub session_id: String,
    pub key: String,
    pub bytes: u64,
    /// From [`super::Recorder::record`] (segment close) to the object stored.
    pub lag: Duration,
}

#[derive(Default)]
struct HealthState {
    spool_full: bool,
    /// Why the store or catalog cannot be reached yet at start (retried until they can).
    connect_error: Option<String>,
    upload_error: Option<String>,
    dropped: u64,
}

pub(super) struct Shared {
    pub(super) cfg: RecorderConfig,
    pub(super) spool: Spool,
    pub(super) store: DynStore,
    pub(super) catalog: DynCatalog,
    /// Shared with the other recorders of the process (from [`RecorderConfig::metrics`]).
    pub(super) metrics: Metrics,
    /// Spool bytes reserved: queued for writing or on disk awaiting upload.
    pub(super) used: AtomicU64,
    pub(super) health: watch::Sender<Health>,
    health_state: Mutex<HealthState>,
    pub(super) uploaded: broadcast::Sender<Uploaded>,
    /// Segments dropped per live session, for its session.json.
    pub(super) dropped: Mutex<HashMap<String, u64>>,
}

impl Shared {
    /// Healthy, nothing reserved, nothing dropped yet.
    pub(super) fn new(
        cfg: RecorderConfig,
        spool: Spool,
        store: DynStore,
        catalog: DynCatalog,
    ) -> Self {
        let (health, _) = watch::channel(Health {
            healthy: true,
            message: "recording".into(),
        });
        Self {
            metrics: cfg.metrics.clone(),
            cfg,
            spool,
            store,
            catalog,
            used: AtomicU64::new(0),
            health,
            health_state: Mutex::new(HealthState::default()),
            uploaded: broadcast::channel(UPLOADED_CAPACITY).0,
            dropped: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn reserve(&self, n: u64) -> bool {
        let cap = self.cfg.spool_size_bytes;
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= cap).then_some(u + n)
            })
            .is_ok();
        if ok {
            self.metrics.spool_bytes.inc_by(gauge_bytes(n));
        }
        ok
    }

    /// Count `n` bytes a previous run left in the spool as held.
    pub(super) fn hold_recovered(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
        self.metrics.spool_bytes.inc_by(gauge_bytes(n));
    }

    pub(super) fn release(&self, n: u64) {
        let prev = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or_else(|prev| prev);
        let now = prev.saturating_sub(n);
        self.metrics.spool_bytes.dec_by(gauge_bytes(prev - now));
        if now <= self.cfg.spool_size_bytes / 2 {
            let changed = {
                let mut st = self.lock_health();
                std::mem::replace(&mut st.spool_full, false)
            };
            if changed {
                info!(
                    spool_mib = now / MIB,
                    "spool has room again; recording resumes"
                );
                self.publish_health();
            }
        }
    }

    /// Leave a segment of `room` out of the recording; `why` is its `reason` label (one of
    /// [`crate::metrics::DROP_REASONS`]).
    pub(super) fn drop_segment(
        &self,
        room: &RoomIdentity,
        session_id: &str,
        rendition: &str,
        seq: u64,
        why: &'static str,
    ) {
        if let Some(dropped) = self.metrics.room(room).dropped(why) {
            dropped.inc();
        }
        if let Ok(mut d) = self.dropped.lock() {
            *d.entry(session_id.to_owned()).or_default() += 1;
        }
        {
            let mut st = self.lock_health();
            st.spool_full = true;
            st.dropped += 1;
        }
        warn!(
            room = %room, session = %session_id, rendition, seq, why,
            spool_mib = self.used.load(Ordering::Relaxed) / MIB,
            "segment dropped from the recording"
        );
        self.publish_health();
    }

    /// The store or catalog could not be reached at start; retrying.
    pub(super) fn connect_failed(&self, err: &Error) {
        self.lock_health().connect_error = Some(err.to_string());
        self.publish_health();
    }

    pub(super) fn connected(&self) {
        let changed = self.lock_health().connect_error.take().is_some();
        if changed {
            info!("store and catalog reachable; recording");
            self.publish_health();
        }
    }

    fn upload_failed(&self, err: &Error) {
        let changed = {
            let mut st = self.lock_health();
            let first = st.upload_error.is_none();
            st.upload_error = Some(err.to_string());
            first
        };
        if changed {
            self.publish_health();
        }
    }

    fn upload_ok(&self) {
        let changed = self.lock_health().upload_error.take().is_some();
        if changed {
            info!("uploads succeed again");
            self.publish_health();
        }
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.health_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_health(&self) {
        let (healthy, message) = {
            let st = self.lock_health();
            if st.spool_full {
                (
                    false,
                    format!(
                        "recording degraded: spool full ({} MiB); {} segment(s) left out of the recording",
                        self.cfg.spool_size_bytes / MIB,
                        st.dropped
                    ),
                )
            } else if let Some(e) = &st.connect_error {
                (
                    false,
                    format!(
                        "recording degraded: cannot reach {} or the catalog yet, retrying (segments kept in the spool): {e}",
                        self.store.describe()
                    ),
                )
            } else if let Some(e) = &st.upload_error {
                (
                    false,
                    format!(
                        "uploads to {} failing, segments kept in the spool: {e}",
                        self.store.describe()
                    ),
                )
            } else {
                (true, "recording".to_owned())
            }
        };
        self.health.send_if_modified(|h| {
            let changed = h.healthy != healthy || h.message != message;
            if changed {
                *h = Health { healthy, message };
            }
            changed
        });
    }

    pub(super) fn retry_policy(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.cfg.retry_min_delay)
            .with_max_delay(self.cfg.retry_max_delay)
            .with_jitter()
            .without_max_times()
    }

    /// Put an object of `room` with retries until it succeeds.
    pub(super) async fn put_retrying(
        &self,
        room: &RoomIdentity,
        key: &str,
        body: Bytes,
    ) -> Result<()> {
        let retries = self.metrics.room(room).upload_retries;
        (|| async { self.store.put(key, body.clone(), content_type(key)).await })
            .retry(self.retry_policy())
            .when(|e| !matches!(e, Error::Key(_)))
            .notify(|e, delay| {
                retries.inc();
                self.upload_failed(e);
                warn!(key, error = %e, retry_in = ?delay, "store write failed; retrying");
            })
            .await
            .inspect(|()| self.upload_ok())
    }

    pub(super) async fn catalog_retrying(&self, rec: &Recording) {
        let res = (|| async { self.catalog.upsert(rec).await })
            .retry(self.retry_policy())
            .notify(
                |e, delay| warn!(error = %e, retry_in = ?delay, "catalog write failed; retrying"),
            )
            .await;
        if let Err(e) = res {
            error!(error = %e, "catalog write failed");
        }
    }
}
