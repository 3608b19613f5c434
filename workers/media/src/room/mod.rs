//! A room as the worker runs it ([`Room`]): its config, its stream key file and origin secret,
//! who publishes, its sessions (the [`session`]s, with their [`playlist`]s), the reconnect
//! grace period, viewers and ingest rate. The [`registry`] holds every room of the worker.
//!
//! ```text
//!  publish accepted ─► Room::begin_publish ─► Session (new, or the one in its grace period)
//!  fragments ───────► session::EpochSink ─► playlists + segment bytes ─► origin (HTTP)
//!  publisher left ──► Room::publisher_left ─► grace timer ─► Session ends (ENDLIST)
//! ```

pub mod low_latency;
pub mod names;
pub mod playlist;
pub mod registry;
pub mod session;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomcast_crds::RoomIdentity;
use roomcast_runtime::{Secret, SecretError, SecretFile};
use tokio::sync::broadcast;

use self::session::{Session, header_value, lock};
use crate::config::RoomConfig;
use crate::error::RefuseReason;
use crate::events::MediaEvent;
use crate::metrics::{self, Metrics};

/// A player counts as a viewer for this long after its last playlist fetch.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);
/// At most this many distinct players are tracked per room.
const MAX_TRACKED_VIEWERS: usize = 100_000;

struct Active {
    session: Arc<Session>,
    publisher: Option<u64>,
    /// Bumped on every publisher change, so a stale grace timer does nothing.
    generation: u64,
}

struct RoomState {
    active: Option<Active>,
    last: Option<(Arc<Session>, Instant)>,
}

/// What [`Room::begin_publish`] hands the connection.
pub struct Publish {
    pub session: Arc<Session>,
    pub epoch: u32,
}

/// One room with everything that belongs to it: its config (and through it its stream key
/// file), its origin secret, its live state and viewer tracking.
pub struct Room {
    pub cfg: RoomConfig,
    /// What a CDN must send in `X-Origin-Secret`, when the room has one.
    origin_secret: Option<SecretFile>,
    /// x264 speed preset of the encoded rungs.
    pub speed_preset: String,
    /// `Cache-Control` of playlists and of segments, made once.
    pub playlist_cache_control: http::HeaderValue,
    pub segment_cache_control: http::HeaderValue,
    state: Mutex<RoomState>,
    viewers: Mutex<HashMap<u64, Instant>>,
    /// Bytes read in the last five seconds, and their sum (kept, not recomputed per read).
    ingest_window: Mutex<(VecDeque<(Instant, usize)>, usize)>,
    /// Handles of the per-read metrics, so the hot path allocates no labels.
    ingest_bytes: prometheus_client::metrics::counter::Counter,
    ingest_kbps: prometheus_client::metrics::gauge::Gauge,
    events: broadcast::Sender<MediaEvent>,
    pub metrics: Metrics,
    /// Publisher connections that accepted a publish and have not finished draining.
    pub ingests: std::sync::atomic::AtomicUsize,
}

/// What the HTTP origin and status see.
pub enum Liveness {
    /// No session now or recently.
    Idle,
    /// A session (live, in grace, or ended recently with ENDLIST).
    Session(Arc<Session>),
}

impl Room {
    pub fn new(
        cfg: RoomConfig,
        origin_secret: Option<SecretFile>,
        speed_preset: String,
        events: broadcast::Sender<MediaEvent>,
        metrics: Metrics,
    ) -> Self {
        let labels = metrics::room(cfg.id());
        let ingest_bytes = metrics.ingest_bytes.get_or_create(&labels).clone();
        let ingest_kbps = metrics.ingest_kbps.get_or_create(&labels).clone();
        Room {
            playlist_cache_control: header_value(format!(
                "public, max-age={}",
                cfg.playlist_max_age_seconds
            )),
            segment_cache_control: header_value(format!(
                "public, max-age={}, immutable",
                cfg.segment_max_age_seconds
            )),
            cfg,
            origin_secret,
            speed_preset,
            state: Mutex::new(RoomState {
                active: None,
                last: None,
            }),
            viewers: Mutex::new(HashMap::new()),
            ingest_window: Mutex::new((VecDeque::new(), 0)),
            ingest_bytes,
            ingest_kbps,
            events,
            metrics,
            ingests: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn id(&self) -> &RoomIdentity {
        self.cfg.id()
    }

    /// The stream key as its file says now (keys rotate without a restart).
    pub fn stream_key(&self) -> Result<Secret, SecretError> {
        Secret::from_file(&self.cfg.stream_key_file)
    }

    /// The CDN origin secret, when the room has one.
    pub fn origin_secret(&self) -> Option<&SecretFile> {
        self.origin_secret.as_ref()
    }

    /// A publisher with the right key asks to publish.
    pub fn begin_publish(&self, conn: u64) -> Result<Publish, RefuseReason> {
        let mut st = lock(&self.state);
        let room = self.id();
        if let Some(active) = &mut st.active {
            if active.publisher.is_some() {
                return Err(RefuseReason::AlreadyLive);
            }
            active.publisher = Some(conn);
            active.generation += 1;
            let session = active.session.clone();
            let epoch = session.begin_epoch();
            self.metrics
                .reconnects
                .get_or_create(&metrics::room(room))
                .inc();
            self.metrics
                .publishers
                .get_or_create(&metrics::room(room))
                .set(1);
            tracing::info!(session = %session.id, epoch, "publisher reconnected within the grace period; session continues");
            return Ok(Publish { session, epoch });
        }
        let session = Arc::new(Session::new(
            &self.cfg,
            self.events.clone(),
            self.metrics.clone(),
        ));
        let epoch = session.begin_epoch();
        st.active = Some(Active {
            session: session.clone(),
            publisher: Some(conn),
            generation: 0,
        });
        st.last = None;
        self.metrics
            .sessions_started
            .get_or_create(&metrics::room(room))
            .inc();
        self.metrics
            .sessions_live
            .get_or_create(&metrics::room(room))
            .set(1);
        self.metrics
            .publishers
            .get_or_create(&metrics::room(room))
            .set(1);
        tracing::info!(session = %session.id, "session started");
        let _ = self.events.send(MediaEvent::SessionStarted {
            session_id: session.id.clone(),
            room: room.to_string(),
            renditions: session.rendition_names(),
            started_at: session.started_at.into(),
        });
        Ok(Publish { session, epoch })
    }

    /// The publisher `conn` disconnected; its pipeline may still be draining (a reconnect is
    /// accepted right away and its epoch waits for the drain). Unless `end_now` (shutdown: the
    /// caller ends the session with [`Room::end_session_if`] after the drain), the session ends
    /// after the grace period unless someone republishes. Returns the generation to end.
    pub fn publisher_left(self: &Arc<Self>, conn: u64, end_now: bool) -> Option<u64> {
        let room = self.id();
        let generation = {
            let mut st = lock(&self.state);
            let active = st.active.as_mut()?;
            if active.publisher != Some(conn) {
                return None;
            }
            active.publisher = None;
            active.generation += 1;
            active.generation
        };
        self.metrics
            .publishers
            .get_or_create(&metrics::room(room))
            .set(0);
        if end_now {
            return Some(generation);
        }
        tracing::info!(grace = ?self.cfg.reconnect_grace, "publisher left; waiting for a reconnect");
        let me = self.clone();
        let grace = self.cfg.reconnect_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            me.end_session_if(generation).await;
        });
        Some(generation)
    }

    /// End the session if nobody republished since `generation`; waits until the last pipeline
    /// of the session has drained, so ENDLIST comes after the last segment.
    pub async fn end_session_if(&self, generation: u64) {
        let session = {
            let mut st = lock(&self.state);
            match &st.active {
                Some(a) if a.generation == generation && a.publisher.is_none() => {}
                _ => return,
            }
            let Some(active) = st.active.take() else {
                return;
            };
            st.last = Some((active.session.clone(), Instant::now()));
            active.session
        };
        let _drained = session.pipeline_slot.clone().lock_owned().await;
        if session.end() {
            tracing::info!(session = %session.id, "session ended");
        }
        self.metrics
            .sessions_live
            .get_or_create(&metrics::room(self.id()))
            .set(0);
    }

    /// End the session waiting for its publisher (worker shutdown).
    pub async fn end_all(&self) {
        let generation = {
            let st = lock(&self.state);
            match &st.active {
                Some(a) if a.publisher.is_none() => Some(a.generation),
                _ => None,
            }
        };
        if let Some(g) = generation {
            self.end_session_if(g).await;
        }
    }

    pub fn is_live(&self) -> bool {
        lock(&self.state)
            .active
            .as_ref()
            .is_some_and(|a| a.publisher.is_some())
    }

    /// The session viewers see: the active one, or the last one for one DVR window after it
    /// ended (its playlists carry ENDLIST).
    pub fn liveness(&self) -> Liveness {
        let mut st = lock(&self.state);
        if let Some(a) = &st.active {
            return Liveness::Session(a.session.clone());
        }
        let keep = Duration::from_secs(u64::from(self.cfg.dvr_window_seconds));
        match &st.last {
            Some((s, at)) if at.elapsed() < keep => Liveness::Session(s.clone()),
            Some(_) => {
                st.last = None;
                Liveness::Idle
            }
            None => Liveness::Idle,
        }
    }

    /// A player fetched a playlist.
    pub fn saw_viewer(&self, ip: Option<IpAddr>, user_agent: &str) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ip.hash(&mut h);
        user_agent.hash(&mut h);
        let key = h.finish();
        let now = Instant::now();
        let mut v = lock(&self.viewers);
        if v.len() >= MAX_TRACKED_VIEWERS && !v.contains_key(&key) {
            v.retain(|_, t| now.duration_since(*t) < VIEWER_WINDOW);
            if v.len() >= MAX_TRACKED_VIEWERS {
                return;
            }
        }
        v.insert(key, now);
    }

    /// Distinct players in the last [`VIEWER_WINDOW`].
    pub fn viewers(&self) -> usize {
        let now = Instant::now();
        let mut v = lock(&self.viewers);
        v.retain(|_, t| now.duration_since(*t) < VIEWER_WINDOW);
        let n = v.len();
        self.metrics
            .viewers
            .get_or_create(&metrics::room(self.id()))
            .set(n as i64);
        n
    }

    /// Count ingest bytes; returns kbit/s over the last 5 s.
    pub fn ingest(&self, bytes: usize) -> u64 {
        let now = Instant::now();
        self.ingest_bytes.inc_by(bytes as u64);
        let mut guard = lock(&self.ingest_window);
        let (window, total) = &mut *guard;
        window.push_back((now, bytes));
        *total += bytes;
        while let Some(&(t, b)) = window.front() {
            if now.duration_since(t) <= Duration::from_secs(5) {
                break;
            }
            window.pop_front();
            *total -= b;
        }
        let total = *total;
        let kbps = (total as u64 * 8) / 5 / 1000;
        self.ingest_kbps.set(kbps as i64);
        kbps
    }
}
