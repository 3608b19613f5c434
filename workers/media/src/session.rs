//! Rooms and their live sessions: who publishes, the playlists and segment bytes of each
//! rendition, the reconnect grace period.
//!
//! A session starts with the first accepted publish and survives publisher drops shorter than
//! `reconnectGraceSeconds`: every publisher connection is one *epoch* with its own pipeline; the
//! first segment of a later epoch carries `EXT-X-DISCONTINUITY`. Epochs of one session never
//! overlap: a new epoch's pipeline starts only after the previous one drained
//! ([`Session::pipeline_slot`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use roomcast_crds::Rendition;
use roomcast_runtime::{Secret, SecretError};
use tokio::sync::broadcast;

use crate::config::RoomConfig;
use crate::error::RefuseReason;
use crate::events::MediaEvent;
use crate::fragment::{ClosedFragment, FragmentSink, RenditionInfo};
use crate::metrics::{self, Metrics, RenditionLabels};
use crate::playlist::{MediaPlaylist, Segment, SegmentFormat, Variant, render_master};

/// A player counts as a viewer for this long after its last playlist fetch.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);
/// At most this many distinct players are tracked per room.
const MAX_TRACKED_VIEWERS: usize = 100_000;

/// A header value from text this crate formats (digits and ASCII), never invalid.
fn header_value(text: String) -> http::HeaderValue {
    http::HeaderValue::try_from(text).unwrap_or(http::HeaderValue::from_static(""))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One rendition's live state.
pub struct RenditionState {
    pub rendition: Rendition,
    pub playlist: MediaPlaylist,
    data: HashMap<u64, Bytes>,
    pub info: Option<RenditionInfo>,
    next_seq: u64,
    pending_discontinuity: bool,
    /// Rendered playlist and its ETag, until the playlist changes.
    rendered: Option<Rendered>,
}

/// A rendered playlist with its ETag, both ready to send as they are.
#[derive(Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: http::HeaderValue,
    /// Segments listed (0: nothing playable yet).
    pub segments: usize,
}

impl Rendered {
    fn new(text: String, segments: usize) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        let etag = format!("\"{:016x}-{}\"", h.finish(), text.len());
        Rendered {
            body: Bytes::from(text),
            etag: header_value(etag),
            segments,
        }
    }
}

struct SessionState {
    renditions: Vec<RenditionState>,
    epochs: u32,
    ended: Option<DateTime<Utc>>,
    has_audio: bool,
    master: Option<Rendered>,
}

/// One live session of a room.
pub struct Session {
    pub id: String,
    pub room_id: String,
    pub started_at: DateTime<Utc>,
    state: Mutex<SessionState>,
    /// Held by the epoch whose pipeline runs; the next epoch waits for it.
    pub pipeline_slot: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<MediaEvent>,
    metrics: Metrics,
}

fn new_session_id(now: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

impl Session {
    fn new(cfg: &RoomConfig, events: broadcast::Sender<MediaEvent>, metrics: Metrics) -> Self {
        let now = Utc::now();
        let window = Duration::from_secs(u64::from(cfg.dvr_window_seconds));
        let renditions = cfg
            .renditions
            .iter()
            .map(|r| RenditionState {
                rendition: r.clone(),
                playlist: MediaPlaylist::new(SegmentFormat::MpegTs, cfg.segment_seconds, window),
                data: HashMap::new(),
                info: None,
                next_seq: 0,
                pending_discontinuity: false,
                rendered: None,
            })
            .collect();
        Session {
            id: new_session_id(now),
            room_id: cfg.id(),
            started_at: now,
            state: Mutex::new(SessionState {
                renditions,
                epochs: 0,
                ended: None,
                has_audio: true,
                master: None,
            }),
            pipeline_slot: Arc::new(tokio::sync::Mutex::new(())),
            events,
            metrics,
        }
    }

    /// Start a new publisher epoch; returns its number (0 for the first).
    fn begin_epoch(&self) -> u32 {
        let mut st = lock(&self.state);
        let epoch = st.epochs;
        st.epochs += 1;
        if epoch > 0 {
            for r in &mut st.renditions {
                r.pending_discontinuity = true;
            }
        }
        epoch
    }

    pub fn set_has_audio(&self, has_audio: bool) {
        let mut st = lock(&self.state);
        st.has_audio = has_audio;
        st.master = None;
    }

    pub fn is_ended(&self) -> bool {
        lock(&self.state).ended.is_some()
    }

    pub fn rendition_names(&self) -> Vec<String> {
        lock(&self.state)
            .renditions
            .iter()
            .map(|r| r.rendition.name.clone())
            .collect()
    }

    /// A fragment closed: move its bytes into memory, extend the playlist, drop what left the
    /// window, tell subscribers.
    fn add_fragment(
        &self,
        fragment: ClosedFragment,
        info: Option<RenditionInfo>,
        epoch_started: DateTime<Utc>,
        epoch_clock: Instant,
    ) {
        let bytes = fragment.bytes.clone();
        let duration = fragment.end.saturating_sub(fragment.start);
        if bytes.is_empty() || duration.is_zero() {
            return;
        }
        let pdt = epoch_started
            + chrono::Duration::from_std(fragment.start)
                .unwrap_or_else(|_| chrono::Duration::zero());
        let (event, name) = {
            let mut st = lock(&self.state);
            let Some(r) = st.renditions.get_mut(fragment.rendition) else {
                return;
            };
            if info.is_some() {
                r.info = info;
            }
            let seq = r.next_seq;
            r.next_seq += 1;
            let discontinuity = std::mem::take(&mut r.pending_discontinuity);
            let removed = r.playlist.push(Segment {
                seq,
                duration,
                discontinuity,
                program_date_time: pdt,
                size: bytes.len(),
            });
            r.data.insert(seq, bytes.clone());
            r.rendered = None;
            for old in removed {
                r.data.remove(&old.seq);
            }
            let name = r.rendition.name.clone();
            st.master = None;
            (
                MediaEvent::SegmentClosed {
                    session_id: self.id.clone(),
                    room: self.room_id.clone(),
                    rendition: name.clone(),
                    seq,
                    duration,
                    discontinuity,
                    program_date_time: pdt.into(),
                    bytes,
                },
                name,
            )
        };
        self.metrics
            .segments
            .get_or_create(&RenditionLabels {
                room: self.room_id.clone(),
                rendition: name.clone(),
            })
            .inc();
        let lag = epoch_clock.elapsed().saturating_sub(fragment.end);
        self.metrics
            .transcode_lag_ms
            .get_or_create(&metrics::room(&self.room_id))
            .set(lag.as_millis() as i64);
        tracing::debug!(rendition = %name, ?duration, "segment closed");
        let _ = self.events.send(event);
    }

    fn end(&self) -> bool {
        let (segments, ended_at) = {
            let mut st = lock(&self.state);
            if st.ended.is_some() {
                return false;
            }
            let now = Utc::now();
            st.ended = Some(now);
            for r in &mut st.renditions {
                r.playlist.ended = true;
                r.rendered = None;
            }
            (st.renditions.first().map(|r| r.next_seq).unwrap_or(0), now)
        };
        let _ = self.events.send(MediaEvent::SessionEnded {
            session_id: self.id.clone(),
            room: self.room_id.clone(),
            started_at: self.started_at.into(),
            ended_at: ended_at.into(),
            segments,
            clean: true,
        });
        true
    }

    /// The media playlist of a rendition, rendered once per change.
    pub fn media_playlist(&self, rendition: &str) -> Option<Rendered> {
        let mut st = lock(&self.state);
        let r = st
            .renditions
            .iter_mut()
            .find(|r| r.rendition.name == rendition)?;
        Some(
            r.rendered
                .get_or_insert_with(|| {
                    Rendered::new(r.playlist.render(), r.playlist.segments.len())
                })
                .clone(),
        )
    }

    /// Segment bytes while the segment is in the window.
    pub fn segment(&self, rendition: &str, seq: u64) -> Option<Bytes> {
        let st = lock(&self.state);
        let r = st
            .renditions
            .iter()
            .find(|r| r.rendition.name == rendition)?;
        r.data.get(&seq).cloned()
    }

    /// Master playlist over the renditions that have produced a segment; `None` before any has.
    pub fn master_playlist(&self) -> Option<Rendered> {
        let mut st = lock(&self.state);
        if st.master.is_none() {
            st.master = render_session_master(&st).map(|text| Rendered::new(text, 1));
        }
        st.master.clone()
    }

    /// Bytes of segments held in memory, all renditions.
    pub fn held_bytes(&self) -> usize {
        let st = lock(&self.state);
        st.renditions
            .iter()
            .map(|r| r.data.values().map(Bytes::len).sum::<usize>())
            .sum()
    }
}

/// Fragment sink of one epoch.
pub struct EpochSink {
    pub session: Arc<Session>,
    pub started: DateTime<Utc>,
    pub clock: Instant,
}

impl FragmentSink for EpochSink {
    fn fragment_closed(&self, fragment: ClosedFragment, info: Option<RenditionInfo>) {
        self.session
            .add_fragment(fragment, info, self.started, self.clock);
    }
}

/// A rendition this many segments ahead of one that has none means the other is broken; the
/// master then lists the renditions that play.
const MASTER_WAIT_SEGMENTS: usize = 3;

/// Players read a live master playlist once, so it waits until every rendition has a segment:
/// the passthrough source is out a moment before the encoded rungs, and a player that came in
/// that moment would never see the ladder.
fn master_ready(segments: impl Iterator<Item = usize> + Clone) -> bool {
    segments.clone().all(|n| n > 0) || segments.into_iter().any(|n| n >= MASTER_WAIT_SEGMENTS)
}

fn render_session_master(st: &SessionState) -> Option<String> {
    if !master_ready(st.renditions.iter().map(|r| r.playlist.segments.len())) {
        return None;
    }
    let audio = if st.has_audio { ",mp4a.40.2" } else { "" };
    let variants: Vec<Variant> = st
        .renditions
        .iter()
        .filter(|r| !r.playlist.segments.is_empty())
        .map(|r| {
            let audio_kbps = r
                .rendition
                .audio_kbps
                .unwrap_or(if r.rendition.is_source() { 0 } else { 128 });
            let configured = u64::from(r.rendition.video_kbps.unwrap_or(0) + audio_kbps) * 1000;
            let (peak, avg) = r.playlist.bandwidth().unwrap_or((configured, configured));
            Variant {
                uri: format!("{}/index.m3u8", r.rendition.name),
                bandwidth: peak.max(1),
                average_bandwidth: Some(avg.max(1)),
                resolution: r.info.as_ref().map(|i| (i.width, i.height)),
                codecs: r.info.as_ref().map(|i| format!("{}{audio}", i.codecs)),
                frame_rate: r.info.as_ref().and_then(|i| i.frame_rate),
            }
        })
        .collect();
    (!variants.is_empty()).then(|| render_master(&variants))
}

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
    origin_secret: Option<Secret>,
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
        origin_secret: Option<Secret>,
        speed_preset: String,
        events: broadcast::Sender<MediaEvent>,
        metrics: Metrics,
    ) -> Self {
        let labels = metrics::room(&cfg.id());
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

    pub fn id(&self) -> String {
        self.cfg.id()
    }

    /// The stream key as its file says now (keys rotate without a restart).
    pub fn stream_key(&self) -> Result<Secret, SecretError> {
        Secret::from_file(&self.cfg.stream_key_file)
    }

    /// The CDN origin secret, when the room has one.
    pub fn origin_secret(&self) -> Option<&Secret> {
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
                .get_or_create(&metrics::room(&room))
                .inc();
            self.metrics
                .publishers
                .get_or_create(&metrics::room(&room))
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
            .get_or_create(&metrics::room(&room))
            .inc();
        self.metrics
            .sessions_live
            .get_or_create(&metrics::room(&room))
            .set(1);
        self.metrics
            .publishers
            .get_or_create(&metrics::room(&room))
            .set(1);
        tracing::info!(session = %session.id, "session started");
        let _ = self.events.send(MediaEvent::SessionStarted {
            session_id: session.id.clone(),
            room,
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
            .get_or_create(&metrics::room(&room))
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
            .get_or_create(&metrics::room(&self.id()))
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
            .get_or_create(&metrics::room(&self.id()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_waits_for_every_rendition_unless_one_is_far_behind() {
        assert!(!master_ready([1, 0, 0].into_iter()));
        assert!(!master_ready([2, 1, 0].into_iter()));
        assert!(master_ready([1, 1, 1].into_iter()));
        assert!(
            master_ready([3, 2, 0].into_iter()),
            "a stuck rung does not hide the others"
        );
        assert!(!master_ready([0].into_iter()));
    }
}
