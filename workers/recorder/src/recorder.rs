//! The recorder runtime: spool writer, uploader, finaliser, crash recovery. See the crate docs
//! for the data flow.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use serde::Serialize;
use tokio::{
    sync::{Semaphore, broadcast, mpsc, oneshot, watch},
    task::{JoinHandle, JoinSet},
};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::{
    DynCatalog, DynStore, Error, Recording, RecordingStatus, Result, check_name,
    config::RecorderConfig,
    events::RecordEvent,
    metrics::Metrics,
    playlist, session_prefix, split_room,
    spool::{Manifest, SegmentEntry, Spool},
    store::content_type,
    unix_ms,
};

const MIB: u64 = 1024 * 1024;
/// Ended sessions the writer remembers to refuse late segments.
const ENDED_REMEMBERED: usize = 64;
/// Capacity of [`Recorder::subscribe_uploads`].
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
    /// From [`Recorder::record`] (segment close) to the object stored.
    pub lag: Duration,
}

enum Cmd {
    Event(RecordEvent, Instant),
    Flush(oneshot::Sender<()>),
}

struct UploadJob {
    room: String,
    session_id: String,
    key: String,
    path: std::path::PathBuf,
    bytes: u64,
    closed_at: Instant,
}

enum Job {
    Upload(UploadJob),
    Catalog(Recording),
    Finalize(String),
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct HealthState {
    spool_full: bool,
    upload_error: Option<String>,
    dropped: u64,
}

struct Shared {
    cfg: RecorderConfig,
    spool: Spool,
    store: DynStore,
    catalog: DynCatalog,
    metrics: Metrics,
    /// Spool bytes reserved: queued for writing or on disk awaiting upload.
    used: AtomicU64,
    health: watch::Sender<Health>,
    health_state: Mutex<HealthState>,
    uploaded: broadcast::Sender<Uploaded>,
    /// Segments dropped per live session, for its session.json.
    dropped: Mutex<HashMap<String, u64>>,
}

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
    pub async fn start(cfg: RecorderConfig, store: DynStore, catalog: DynCatalog) -> Result<Self> {
        let spool = Spool::open(&cfg.spool_dir)?;
        let (health, _) = watch::channel(Health {
            healthy: true,
            message: "recording".into(),
        });
        let shared = Arc::new(Shared {
            cfg,
            spool,
            store,
            catalog,
            metrics: Metrics::default(),
            used: AtomicU64::new(0),
            health,
            health_state: Mutex::new(HealthState::default()),
            uploaded: broadcast::channel(UPLOADED_CAPACITY).0,
            dropped: Mutex::new(HashMap::new()),
        });
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        recover(&shared, &jobs_tx).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(writer(shared.clone(), rx, jobs_tx)),
            tokio::spawn(uploader(shared.clone(), jobs_rx)),
        ];
        info!(store = %shared.store.describe(), spool = %shared.spool.dir().display(), "recorder started");
        Ok(Self { shared, tx, tasks })
    }

    /// Hand over one event. Never blocks and never fails: a segment that does not fit in the
    /// spool is dropped from the recording (counted, logged, and reported by [`Self::health`]).
    pub fn record(&self, event: RecordEvent) {
        if let RecordEvent::SegmentClosed {
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
                self.shared
                    .drop_segment(session_id, rendition, *seq, "spool full");
                return;
            }
        }
        if self.tx.send(Cmd::Event(event, Instant::now())).is_err() {
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
        let shared = &self.shared;
        let spooled = shared.spool.sessions()?;
        let mut finalised = 0;
        for rec in shared
            .catalog
            .list(room, crate::catalog::MAX_PAGE, None)
            .await?
        {
            if rec.status != RecordingStatus::Live || spooled.contains(&rec.session_id) {
                continue;
            }
            let mut log = Vec::new();
            for key in shared.store.list(&rec.prefix).await? {
                let rest = key.strip_prefix(&rec.prefix).unwrap_or_default();
                let Some((rendition, file)) = rest.split_once('/') else {
                    continue;
                };
                let Some(seq) = file.strip_suffix(".ts").and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                log.push(SegmentEntry {
                    rendition: rendition.to_owned(),
                    seq,
                    duration: nominal.as_secs_f64(),
                    discontinuity: false,
                    program_date_time: 0,
                    bytes: 0,
                });
            }
            // Time from the first sequence number of each rendition.
            let mut first: HashMap<String, u64> = HashMap::new();
            for e in &log {
                let f = first.entry(e.rendition.clone()).or_insert(e.seq);
                *f = (*f).min(e.seq);
            }
            let nominal_ms = i64::try_from(nominal.as_millis()).unwrap_or(i64::MAX);
            for e in &mut log {
                let index = e.seq - first.get(&e.rendition).copied().unwrap_or(e.seq);
                e.program_date_time = rec.started_at + index as i64 * nominal_ms;
            }
            let m = Manifest {
                room: rec.room.clone(),
                session_id: rec.session_id.clone(),
                renditions: rec.renditions.clone(),
                started_at: rec.started_at,
                ended_at: None,
                clean: Some(false),
                dropped_segments: 0,
            };
            let span = info_span!("orphan", room = %rec.room, session = %rec.session_id);
            warn!(parent: &span, segments = log.len(), "live session without a spool; finalising as interrupted");
            write_session(shared, &m, &log).instrument(span).await?;
            shared.metrics.sessions_recovered.inc();
            finalised += 1;
        }
        Ok(finalised)
    }

    /// Bytes held by the spool (queued or on disk).
    pub fn spool_bytes(&self) -> u64 {
        self.shared.used.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn reserve(&self, n: u64) -> bool {
        let cap = self.cfg.spool_size_bytes;
        let ok = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= cap).then_some(u + n)
            })
            .is_ok();
        self.metrics
            .spool_bytes
            .set(self.used.load(Ordering::Relaxed) as i64);
        ok
    }

    fn release(&self, n: u64) {
        let now = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .map(|prev| prev.saturating_sub(n))
            .unwrap_or(0);
        self.metrics.spool_bytes.set(now as i64);
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

    fn drop_segment(&self, session_id: &str, rendition: &str, seq: u64, why: &str) {
        self.metrics.segments_dropped.inc();
        if let Ok(mut d) = self.dropped.lock() {
            *d.entry(session_id.to_owned()).or_default() += 1;
        }
        {
            let mut st = self.lock_health();
            st.spool_full = true;
            st.dropped += 1;
        }
        warn!(
            session = %session_id, rendition, seq, why,
            spool_mib = self.used.load(Ordering::Relaxed) / MIB,
            "segment dropped from the recording"
        );
        self.publish_health();
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

    fn retry_policy(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.cfg.retry_min_delay)
            .with_max_delay(self.cfg.retry_max_delay)
            .with_jitter()
            .without_max_times()
    }

    /// Put with retries until it succeeds.
    async fn put_retrying(&self, key: &str, body: Bytes) -> Result<()> {
        (|| async { self.store.put(key, body.clone(), content_type(key)).await })
            .retry(self.retry_policy())
            .when(|e| !matches!(e, Error::Key(_)))
            .notify(|e, delay| {
                self.metrics.upload_retries.inc();
                self.upload_failed(e);
                warn!(key, error = %e, retry_in = ?delay, "store write failed; retrying");
            })
            .await
            .inspect(|()| self.upload_ok())
    }

    async fn catalog_retrying(&self, rec: &Recording) {
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

fn manifest_of(room: &str, session_id: &str, renditions: Vec<String>, started_at: i64) -> Manifest {
    Manifest {
        room: room.to_owned(),
        session_id: session_id.to_owned(),
        renditions,
        started_at,
        ended_at: None,
        clean: None,
        dropped_segments: 0,
    }
}

fn live_recording(shared: &Shared, m: &Manifest) -> Recording {
    Recording {
        room: m.room.clone(),
        session_id: m.session_id.clone(),
        started_at: m.started_at,
        ended_at: None,
        duration_seconds: None,
        status: RecordingStatus::Live,
        renditions: m.renditions.clone(),
        prefix: session_prefix(&shared.cfg.prefix, &m.room, &m.session_id),
        poster: None,
        bytes: 0,
        segments: 0,
        dropped_segments: 0,
    }
}

/// Spools events in order and hands the remote work to the uploader.
async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    jobs: mpsc::UnboundedSender<Job>,
) {
    let mut sessions: HashMap<String, Manifest> = HashMap::new();
    // Recently ended sessions: a late segment must not reopen (and later overwrite) one.
    let mut ended: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    while let Some(cmd) = rx.recv().await {
        let (event, closed_at) = match cmd {
            Cmd::Flush(tx) => {
                let _ = jobs.send(Job::Flush(tx));
                continue;
            }
            Cmd::Event(e, at) => (e, at),
        };
        let span = info_span!("session", room = %event.room(), session = %event.session_id());
        let reserved = match &event {
            RecordEvent::SegmentClosed { bytes, .. } => bytes.len() as u64,
            _ => 0,
        };
        let valid = split_room(event.room())
            .and_then(|_| check_name(event.session_id()))
            .map(drop);
        if let Err(e) = valid {
            span.in_scope(|| error!(error = %e, "event ignored"));
            shared.release(reserved);
            continue;
        }
        match event {
            RecordEvent::SessionStarted {
                session_id,
                room,
                renditions,
                started_at,
            } => {
                let renditions: Vec<String> = renditions
                    .into_iter()
                    .filter(|r| shared.cfg.records(r) && check_name(r).is_ok())
                    .collect();
                let m = manifest_of(&room, &session_id, renditions, unix_ms(started_at));
                if let Err(e) = shared.spool.write_manifest(&m).await {
                    span.in_scope(|| error!(error = %e, "writing the session manifest"));
                }
                span.in_scope(|| info!(renditions = ?m.renditions, "session recording"));
                let _ = jobs.send(Job::Catalog(live_recording(&shared, &m)));
                sessions.insert(session_id, m);
            }
            RecordEvent::SegmentClosed {
                session_id,
                room,
                rendition,
                seq,
                duration,
                discontinuity,
                program_date_time,
                bytes,
            } => {
                if ended.contains(&session_id) {
                    span.in_scope(|| {
                        warn!(rendition, seq, "segment after the session ended; ignored")
                    });
                    shared.release(reserved);
                    continue;
                }
                if check_name(&rendition).is_err() {
                    shared.release(reserved);
                    shared.drop_segment(&session_id, &rendition, seq, "invalid rendition name");
                    continue;
                }
                let m = sessions.entry(session_id.clone()).or_insert_with(|| {
                    // The recorder started mid-session: the session starts here.
                    let m = manifest_of(&room, &session_id, Vec::new(), unix_ms(program_date_time));
                    let _ = jobs.send(Job::Catalog(live_recording(&shared, &m)));
                    m
                });
                if !m.renditions.contains(&rendition) {
                    m.renditions.push(rendition.clone());
                    if let Err(e) = shared.spool.write_manifest(m).await {
                        span.in_scope(|| error!(error = %e, "writing the session manifest"));
                    }
                }
                let entry = SegmentEntry {
                    rendition: rendition.clone(),
                    seq,
                    duration: duration.as_secs_f64(),
                    discontinuity,
                    program_date_time: unix_ms(program_date_time),
                    bytes: reserved,
                };
                match shared
                    .spool
                    .write_segment(&session_id, &entry, &bytes)
                    .await
                {
                    Ok(path) => {
                        shared.metrics.segments_spooled.inc();
                        let key = format!(
                            "{}{rendition}/{seq}.ts",
                            session_prefix(&shared.cfg.prefix, &room, &session_id)
                        );
                        let _ = jobs.send(Job::Upload(UploadJob {
                            room,
                            session_id,
                            key,
                            path,
                            bytes: reserved,
                            closed_at,
                        }));
                    }
                    Err(e) => {
                        span.in_scope(|| error!(error = %e, "spooling a segment"));
                        shared.release(reserved);
                        shared.drop_segment(&session_id, &rendition, seq, "spool write failed");
                    }
                }
            }
            RecordEvent::SessionEnded {
                session_id,
                room,
                started_at,
                ended_at,
                clean,
                ..
            } => {
                if ended.contains(&session_id) {
                    span.in_scope(|| warn!("session ended twice; ignored"));
                    continue;
                }
                let mut m = sessions
                    .remove(&session_id)
                    .or_else(|| shared.spool.read_manifest(&session_id).ok())
                    .unwrap_or_else(|| {
                        manifest_of(&room, &session_id, Vec::new(), unix_ms(started_at))
                    });
                m.ended_at = Some(unix_ms(ended_at));
                m.clean = Some(clean);
                m.dropped_segments = shared
                    .dropped
                    .lock()
                    .ok()
                    .and_then(|mut d| d.remove(&session_id))
                    .unwrap_or(0);
                if let Err(e) = shared.spool.write_manifest(&m).await {
                    span.in_scope(|| error!(error = %e, "writing the session manifest"));
                }
                span.in_scope(|| info!(clean, "session ended; finalising after its uploads"));
                if ended.len() >= ENDED_REMEMBERED {
                    ended.pop_front();
                }
                ended.push_back(session_id.clone());
                let _ = jobs.send(Job::Finalize(session_id));
            }
        }
    }
}

/// Runs uploads (bounded concurrency), catalog writes and finalisations.
async fn uploader(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
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
                        if let Err(e) = finalize(&shared, &session_id).await {
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
    if let Err(e) = shared.put_retrying(&job.key, body).await {
        error!(error = %e, "segment not stored");
        shared.release(job.bytes);
        return;
    }
    if let Err(e) = tokio::fs::remove_file(&job.path).await {
        warn!(error = %e, "removing an uploaded segment from the spool");
    }
    shared.release(job.bytes);
    let lag = job.closed_at.elapsed();
    shared.metrics.segments_uploaded.inc();
    shared.metrics.bytes_uploaded.inc_by(job.bytes);
    shared.metrics.upload_lag_seconds.observe(lag.as_secs_f64());
    debug!(?lag, "segment stored");
    let _ = shared.uploaded.send(Uploaded {
        session_id: job.session_id,
        key: job.key,
        bytes: job.bytes,
        lag,
    });
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenditionSummary {
    name: String,
    playlist: String,
    segments: u64,
    bytes: u64,
    duration_seconds: f64,
    bandwidth: u64,
}

/// `session.json`, next to the master playlist.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionJson {
    room: String,
    session_id: String,
    status: RecordingStatus,
    started_at: String,
    ended_at: String,
    duration_seconds: f64,
    playlist: String,
    renditions: Vec<RenditionSummary>,
    bytes: u64,
    segments: u64,
    dropped_segments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    poster: Option<String>,
}

/// `poster.jpg` from the first segment of the first rendition, when a poster maker is set.
/// Failures only cost the poster.
async fn make_poster(
    shared: &Shared,
    prefix: &str,
    log: &[SegmentEntry],
    variants: &[(String, u64)],
) -> Option<String> {
    let maker = shared.cfg.poster.as_ref()?;
    let (rendition, _) = variants.first()?;
    let first = playlist::ordered(log, rendition).into_iter().next()?;
    let segment_key = format!("{prefix}{rendition}/{}.ts", first.seq);
    let made = async {
        let segment = shared
            .store
            .get(&segment_key)
            .await?
            .ok_or_else(|| Error::Poster(format!("{segment_key} not in the store")))?;
        let jpeg = maker.poster(segment).await?;
        shared
            .put_retrying(&format!("{prefix}{}", crate::poster::POSTER_KEY), jpeg)
            .await
    };
    match made.await {
        Ok(()) => Some(crate::poster::POSTER_KEY.to_owned()),
        Err(e) => {
            warn!(error = %e, "no poster for this session");
            None
        }
    }
}

/// Playlists, session.json, catalog, then the spool directory goes. Runs after every segment of
/// the session was stored.
async fn finalize(shared: &Shared, session_id: &str) -> Result<()> {
    let m = shared.spool.read_manifest(session_id)?;
    let log = shared.spool.read_log(session_id)?;
    write_session(shared, &m, &log).await?;
    shared.spool.remove_session(session_id).await?;
    shared.metrics.sessions_finalized.inc();
    Ok(())
}

/// Playlists, poster, session.json and the catalog entry of a session whose segments are all
/// stored.
async fn write_session(shared: &Shared, m: &Manifest, log: &[SegmentEntry]) -> Result<()> {
    let session_id = m.session_id.as_str();
    let log = log.to_vec();
    let status = if m.clean == Some(true) {
        RecordingStatus::Complete
    } else {
        RecordingStatus::Interrupted
    };
    let prefix = session_prefix(&shared.cfg.prefix, &m.room, session_id);
    let mut names = m.renditions.clone();
    for e in &log {
        if !names.contains(&e.rendition) {
            names.push(e.rendition.clone());
        }
    }
    let mut renditions = Vec::new();
    let mut variants = Vec::new();
    for name in names {
        let segs = playlist::ordered(&log, &name);
        if segs.is_empty() {
            continue;
        }
        let playlist_key = format!("{prefix}{name}/index.m3u8");
        shared
            .put_retrying(&playlist_key, Bytes::from(playlist::media_playlist(&segs)))
            .await?;
        let bandwidth = playlist::peak_bandwidth(&segs);
        variants.push((name.clone(), bandwidth));
        renditions.push(RenditionSummary {
            playlist: format!("{name}/index.m3u8"),
            segments: segs.len() as u64,
            bytes: segs.iter().map(|s| s.bytes).sum(),
            duration_seconds: segs.iter().map(|s| s.duration).sum(),
            bandwidth,
            name,
        });
    }
    let poster = make_poster(shared, &prefix, &log, &variants).await;
    if !variants.is_empty() {
        shared
            .put_retrying(
                &format!("{prefix}index.m3u8"),
                Bytes::from(playlist::master_playlist(&variants)),
            )
            .await?;
    }
    let last_frame_end = log
        .iter()
        .map(|e| e.program_date_time + (e.duration * 1000.0) as i64)
        .max();
    let ended_at = m
        .ended_at
        .or(last_frame_end)
        .unwrap_or(m.started_at)
        .max(m.started_at);
    let duration_seconds = (ended_at - m.started_at) as f64 / 1000.0;
    let bytes = renditions.iter().map(|r| r.bytes).sum();
    let segments = renditions.iter().map(|r| r.segments).sum();
    let summary = SessionJson {
        room: m.room.clone(),
        session_id: session_id.to_owned(),
        status,
        started_at: crate::rfc3339(m.started_at),
        ended_at: crate::rfc3339(ended_at),
        duration_seconds,
        playlist: "index.m3u8".into(),
        bytes,
        segments,
        dropped_segments: m.dropped_segments,
        renditions,
        poster: poster.clone(),
    };
    let names: Vec<String> = summary.renditions.iter().map(|r| r.name.clone()).collect();
    shared
        .put_retrying(
            &format!("{prefix}session.json"),
            Bytes::from(serde_json::to_vec_pretty(&summary)?),
        )
        .await?;
    shared
        .catalog_retrying(&Recording {
            room: m.room.clone(),
            session_id: session_id.to_owned(),
            started_at: m.started_at,
            ended_at: Some(ended_at),
            duration_seconds: Some(duration_seconds),
            status,
            renditions: names,
            prefix,
            poster,
            bytes,
            segments,
            dropped_segments: m.dropped_segments,
        })
        .await;
    info!(
        status = status.as_str(),
        segments, bytes, duration_seconds, "session finalised"
    );
    Ok(())
}

/// Queue what a previous run left in the spool.
async fn recover(shared: &Shared, jobs: &mpsc::UnboundedSender<Job>) -> Result<()> {
    for session_id in shared.spool.sessions()? {
        let span = info_span!("recover", session = %session_id);
        let _enter = span.enter();
        let mut m = match shared.spool.read_manifest(&session_id) {
            Ok(m) => m,
            Err(e) => {
                error!(error = %e, "unreadable session manifest; session left in the spool");
                continue;
            }
        };
        if split_room(&m.room).is_err() {
            error!(room = %m.room, "invalid room in the session manifest; session left in the spool");
            continue;
        }
        let log = shared.spool.read_log(&session_id)?;
        for p in shared.spool.remove_unlogged(&session_id, &log) {
            debug!(path = %p.display(), "removed a segment that was never logged");
        }
        let mut seen = std::collections::HashSet::new();
        let mut queued = 0;
        for e in &log {
            if !seen.insert((e.rendition.clone(), e.seq)) {
                continue;
            }
            let path = shared.spool.segment_path(&session_id, &e.rendition, e.seq);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            shared.used.fetch_add(meta.len(), Ordering::AcqRel);
            queued += 1;
            let _ = jobs.send(Job::Upload(UploadJob {
                room: m.room.clone(),
                session_id: session_id.clone(),
                key: format!(
                    "{}{}/{}.ts",
                    session_prefix(&shared.cfg.prefix, &m.room, &session_id),
                    e.rendition,
                    e.seq
                ),
                path,
                bytes: meta.len(),
                closed_at: Instant::now(),
            }));
        }
        if m.clean.is_none() {
            // It was live when the previous process died.
            m.clean = Some(false);
            m.ended_at = log
                .iter()
                .map(|e| e.program_date_time + (e.duration * 1000.0) as i64)
                .max();
            shared.spool.write_manifest(&m).await?;
        }
        shared.metrics.sessions_recovered.inc();
        warn!(room = %m.room, queued, logged = log.len(), "recovering a session from the spool");
        let _ = jobs.send(Job::Finalize(session_id));
    }
    shared
        .metrics
        .spool_bytes
        .set(shared.used.load(Ordering::Relaxed) as i64);
    Ok(())
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
