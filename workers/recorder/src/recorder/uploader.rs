//! Stage 2, the uploader: runs the jobs the writer and recovery queue. Segment uploads go
//! spool -> store with bounded concurrency and retries (backon, jitter) until they succeed, then
//! leave the spool; catalog writes retry the same way; a session's finalisation starts once
//! every upload and catalog write queued for it before is done.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Instant};

use bytes::Bytes;
use tokio::{
    sync::{Semaphore, mpsc, oneshot},
    task::JoinSet,
};
use tracing::{Instrument, debug, error, info_span, warn};

use super::{
    finaliser,
    state::{Shared, Uploaded},
};
use crate::{Error, Recording, RoomIdentity};

/// One spooled segment to store under `key`.
pub(super) struct UploadJob {
    pub(super) room: RoomIdentity,
    pub(super) session_id: String,
    pub(super) key: String,
    pub(super) path: PathBuf,
    /// Spool bytes it holds, released once stored (or given up).
    pub(super) bytes: u64,
    pub(super) closed_at: Instant,
    /// A CMAF init segment: outside the spool budget (a few hundred bytes, once per reconnect)
    /// and not counted as a segment.
    pub(super) init: bool,
}

pub(super) enum Job {
    Upload(UploadJob),
    Catalog(Recording),
    Finalize(String),
    Flush(oneshot::Sender<()>),
}

/// Runs uploads (bounded concurrency), catalog writes and finalisations.
pub(super) async fn run(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let slots = Arc::new(Semaphore::new(shared.cfg.upload_concurrency.max(1)));
    // Aborting this task drops the set, which aborts everything in flight.
    let mut tasks = JoinSet::new();
    let mut pending: HashMap<String, Vec<oneshot::Receiver<()>>> = HashMap::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                None => break,
                Some(Job::Upload(job)) => {
                    let (done, wait) = oneshot::channel();
                    pending.entry(job.session_id.clone()).or_default().push(wait);
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let span = info_span!("upload", room = %job.room, session = %job.session_id, key = %job.key);
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        upload(&shared, job).await;
                        drop(permit);
                        drop(done);
                    }.instrument(span));
                }
                Some(Job::Catalog(rec)) => {
                    // The session's finalisation waits for this write, so a slow `live` write
                    // can never land after the final one.
                    let (done, wait) = oneshot::channel();
                    pending.entry(rec.session_id.clone()).or_default().push(wait);
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        shared.catalog_retrying(&rec).await;
                        drop(done);
                    });
                }
                Some(Job::Finalize(session_id)) => {
                    let waits = pending.remove(&session_id).unwrap_or_default();
                    let shared = shared.clone();
                    let span = info_span!("finalise", session = %session_id);
                    tasks.spawn(async move {
                        for w in waits {
                            let _ = w.await;
                        }
                        if let Err(e) = finaliser::finalize(&shared, &session_id).await {
                            error!(error = %e, "finalising the session failed; it stays in the spool for the next start");
                        }
                    }.instrument(span));
                }
                Some(Job::Flush(tx)) => {
                    // Every job queued before the flush is in `tasks` by now.
                    while tasks.join_next().await.is_some() {}
                    // Forget the waits of uploads that are done (the sessions still live).
                    pending.retain(|_, waits| {
                        waits.retain_mut(|w| matches!(w.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
                        !waits.is_empty()
                    });
                    let _ = tx.send(());
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn upload(shared: &Shared, job: UploadJob) {
    let body = match tokio::fs::read(&job.path).await {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            error!(error = %Error::spool(&job.path, e), "spooled segment unreadable; left out of the recording");
            shared.release(job.bytes);
            return;
        }
    };
    if let Err(e) = shared.put_retrying(&job.room, &job.key, body).await {
        error!(error = %e, "segment not stored");
        shared.release(job.bytes);
        return;
    }
    if let Err(e) = tokio::fs::remove_file(&job.path).await {
        warn!(error = %e, "removing an uploaded segment from the spool");
    }
    shared.release(job.bytes);
    if job.init {
        debug!("init segment stored");
        return;
    }
    let lag = job.closed_at.elapsed();
    let metrics = shared.metrics.room(&job.room);
    metrics.segments_uploaded.inc();
    metrics.bytes_uploaded.inc_by(job.bytes);
    metrics.upload_lag_seconds.observe(lag.as_secs_f64());
    debug!(?lag, "segment stored");
    let _ = shared.uploaded.send(Uploaded {
        session_id: job.session_id,
        key: job.key,
        bytes: job.bytes,
        lag,
    });
}
