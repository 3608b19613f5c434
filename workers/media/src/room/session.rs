//! The live sessions of a room: the playlists and segment bytes of each rendition, in memory
//! for as long as they are in the DVR window, and the master playlist over them.
//!
//! A session starts with the first accepted publish and survives publisher drops shorter than
//! `reconnectGraceSeconds`: every publisher connection is one *epoch* with its own pipeline; the
//! first segment of a later epoch carries `EXT-X-DISCONTINUITY`. Epochs of one session never
//! overlap: a new epoch's pipeline starts only after the previous one drained
//! ([`Session::pipeline_slot`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use roomcast_crds::{Rendition, RoomIdentity};
use tokio::sync::broadcast;

use super::low_latency::{Block, RenditionReport, Skip};
use super::playlist::{
    MediaPlaylist, Part, Segment, SegmentFormat, StreamAttributes, Variant, render_master,
};
use crate::config::RoomConfig;
use crate::events::MediaEvent;
use crate::metrics::{self, Metrics, RenditionLabels};
use crate::mux::fragment::{ClosedFragment, FragmentSink, RenditionInfo};
use crate::mux::parts::PartOutput;
use roomcast_crds::Latency;
use roomcast_recorder::InitSegment;

/// A header value from text this crate formats (digits and ASCII), never invalid.
pub(crate) fn header_value(text: String) -> http::HeaderValue {
    http::HeaderValue::try_from(text).unwrap_or(http::HeaderValue::from_static(""))
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One rendition's live state.
pub struct RenditionState {
    pub rendition: Rendition,
    /// Served by the current epoch (see [`Session::serve`]); every rung until a stream starts.
    pub served: bool,
    pub playlist: MediaPlaylist,
    data: HashMap<u64, Bytes>,
    pub info: Option<RenditionInfo>,
    next_seq: u64,
    pending_discontinuity: bool,
    /// Rendered playlist and its ETag, until the playlist changes: the whole playlist and each
    /// kind of delta update, by [`Skip::index`].
    rendered: [Option<Rendered>; Skip::ALL.len()],
    /// Low latency: init segments by id, the parts of the last segments by (seq, index), and
    /// the id of the init the open segment uses.
    inits: HashMap<u32, Bytes>,
    parts: HashMap<(u64, usize), Bytes>,
    current_init: u32,
}

/// Segments whose parts stay servable (while they are in the window): those listed in the
/// playlist (three target durations) and a margin for players that fetched the playlist a
/// moment earlier. The operator's memory estimate counts them.
const PART_SEGMENTS_KEPT: u64 = roomcast_crds::defaults::LOW_LATENCY_PART_SEGMENTS as u64;

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
    pub room: RoomIdentity,
    pub started_at: DateTime<Utc>,
    state: Mutex<SessionState>,
    /// Held by the epoch whose pipeline runs; the next epoch waits for it.
    pub pipeline_slot: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<MediaEvent>,
    metrics: Metrics,
    /// Bumped whenever a playlist changes: blocking playlist and part requests wait on it.
    changes: tokio::sync::watch::Sender<u64>,
}

fn new_session_id(now: DateTime<Utc>) -> String {
    let suffix: u32 = rand::random();
    format!("{}-{suffix:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

impl Session {
    pub(super) fn new(
        cfg: &RoomConfig,
        events: broadcast::Sender<MediaEvent>,
        metrics: Metrics,
    ) -> Self {
        let now = Utc::now();
        let window = Duration::from_secs(u64::from(cfg.dvr_window_seconds));
        let low = cfg.latency == Latency::Low;
        let format = if low {
            SegmentFormat::Fmp4
        } else {
            SegmentFormat::MpegTs
        };
        let renditions = cfg
            .renditions
            .iter()
            .map(|r| {
                let mut playlist = MediaPlaylist::new(format.clone(), cfg.segment_seconds, window);
                playlist.part_target = low.then_some(cfg.part_target);
                RenditionState {
                    rendition: r.clone(),
                    served: true,
                    playlist,
                    data: HashMap::new(),
                    info: None,
                    next_seq: 0,
                    pending_discontinuity: false,
                    rendered: Default::default(),
                    inits: HashMap::new(),
                    parts: HashMap::new(),
                    current_init: 0,
                }
            })
            .collect();
        Session {
            id: new_session_id(now),
            room: cfg.id().clone(),
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
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Start a new publisher epoch; returns its number (0 for the first).
    pub(super) fn begin_epoch(&self) -> u32 {
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

    /// The renditions served: the room's whole ladder until a stream starts, then what its
    /// ladder kept ([`crate::transcode::ladder`]).
    pub fn rendition_names(&self) -> Vec<String> {
        lock(&self.state)
            .renditions
            .iter()
            .filter(|r| r.served)
            .map(|r| r.rendition.name.clone())
            .collect()
    }

    /// The epoch starting now serves the renditions at these indexes of the room's ladder; the
    /// master lists only those. Rungs it drops keep their earlier segments (DVR) and get no new
    /// ones.
    pub fn serve(&self, served: &[usize]) {
        let mut st = lock(&self.state);
        for (i, r) in st.renditions.iter_mut().enumerate() {
            r.served = served.contains(&i);
        }
        st.master = None;
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
            let has_audio = st.has_audio;
            let Some(r) = st.renditions.get_mut(fragment.rendition) else {
                return;
            };
            if info.is_some() {
                r.info = info;
            }
            let seq = r.next_seq;
            r.next_seq += 1;
            let discontinuity = std::mem::take(&mut r.pending_discontinuity);
            let parts = r.playlist.open_parts.clone();
            let removed = r.playlist.push(Segment {
                seq,
                duration,
                discontinuity,
                program_date_time: pdt,
                size: bytes.len(),
                init: r.current_init,
                parts,
            });
            r.data.insert(seq, bytes.clone());
            let first = r.playlist.media_sequence();
            r.parts
                .retain(|(s, _), _| s + PART_SEGMENTS_KEPT > seq && *s >= first);
            for old in removed {
                r.data.remove(&old.seq);
            }
            let first_init = r.playlist.segments.front().map_or(0, |s| s.init);
            r.inits.retain(|id, _| *id >= first_init);
            let name = r.rendition.name.clone();
            let attributes = stream_attributes(r.info.as_ref(), has_audio);
            // A CMAF segment plays only after its init: the recorder stores both.
            let init = (r.playlist.format == SegmentFormat::Fmp4)
                .then(|| r.inits.get(&r.current_init))
                .flatten()
                .map(|bytes| InitSegment {
                    id: r.current_init,
                    bytes: bytes.clone(),
                });
            st.changed();
            (
                MediaEvent::SegmentClosed {
                    session_id: self.id.clone(),
                    room: self.room.to_string(),
                    rendition: name.clone(),
                    seq,
                    duration,
                    discontinuity,
                    program_date_time: pdt.into(),
                    bytes,
                    init,
                    attributes,
                },
                name,
            )
        };
        self.metrics
            .segments
            .get_or_create(&RenditionLabels {
                room: self.room.to_string(),
                rendition: name.clone(),
            })
            .inc();
        let lag = epoch_clock.elapsed().saturating_sub(fragment.end);
        self.metrics
            .transcode_lag_ms
            .get_or_create(&metrics::room(&self.room))
            .set(lag.as_millis() as i64);
        tracing::debug!(rendition = %name, ?duration, "segment closed");
        self.changes.send_modify(|v| *v += 1);
        let _ = self.events.send(event);
    }

    /// A CMAF init segment or part closed (a segment goes through [`Self::add_fragment`]).
    fn add_cmaf(&self, rendition: usize, output: PartOutput, info: Option<RenditionInfo>) {
        {
            let mut st = lock(&self.state);
            let Some(r) = st.renditions.get_mut(rendition) else {
                return;
            };
            if info.is_some() {
                r.info = info;
            }
            match output {
                PartOutput::Init { bytes, .. } => {
                    // Ids restart with every epoch's segmenter; the session numbers them itself.
                    r.current_init += 1;
                    r.inits.insert(r.current_init, bytes);
                    r.playlist.open_init = r.current_init;
                    return;
                }
                PartOutput::Part {
                    bytes,
                    duration,
                    independent,
                } => {
                    let index = r.playlist.open_parts.len();
                    r.playlist.open_discontinuity = r.pending_discontinuity;
                    r.parts.insert((r.next_seq, index), bytes);
                    r.playlist.push_part(Part {
                        duration,
                        independent,
                    });
                }
                PartOutput::Segment { .. } => return,
            }
            st.changed();
        }
        self.changes.send_modify(|v| *v += 1);
    }

    pub(super) fn end(&self) -> bool {
        let (segments, ended_at) = {
            let mut st = lock(&self.state);
            if st.ended.is_some() {
                return false;
            }
            let now = Utc::now();
            st.ended = Some(now);
            for r in &mut st.renditions {
                r.playlist.ended = true;
            }
            st.changed();
            (st.renditions.first().map(|r| r.next_seq).unwrap_or(0), now)
        };
        self.changes.send_modify(|v| *v += 1);
        let _ = self.events.send(MediaEvent::SessionEnded {
            session_id: self.id.clone(),
            room: self.room.to_string(),
            started_at: self.started_at.into(),
            ended_at: ended_at.into(),
            segments,
            clean: true,
        });
        true
    }

    /// The media playlist of a rendition, or the delta update `skip` asks for (the whole
    /// playlist where the playlist offers none), rendered once per change.
    pub fn media_playlist(&self, rendition: &str, skip: Skip) -> Option<Rendered> {
        let mut st = lock(&self.state);
        let index = st
            .renditions
            .iter()
            .position(|r| r.rendition.name == rendition)?;
        if let Some(r) = &st.renditions[index].rendered[skip.index()] {
            return Some(r.clone());
        }
        let r = &st.renditions[index];
        let rendered = if r.playlist.part_target.is_some() {
            let reports: Vec<RenditionReport> = st
                .renditions
                .iter()
                // Only renditions this publish serves: a rung the ladder dropped has no parts.
                .filter(|o| o.served && o.rendition.name != rendition)
                .filter_map(|o| {
                    let (last_msn, last_part) = o.playlist.last_part()?;
                    Some(RenditionReport {
                        uri: format!("../{}/index.m3u8", o.rendition.name),
                        last_msn,
                        last_part,
                    })
                })
                .collect();
            let playable = r.playlist.segments.len() + r.playlist.open_parts.len();
            Rendered::new(r.playlist.render_low_latency(&reports, skip), playable)
        } else {
            Rendered::new(r.playlist.render(), r.playlist.segments.len())
        };
        st.renditions[index].rendered[skip.index()] = Some(rendered.clone());
        Some(rendered)
    }

    /// Where a blocking request for `(msn, part)` of a rendition stands, and how long it may
    /// wait; `None` for an unknown rendition or a room without low latency.
    pub fn block(&self, rendition: &str, msn: u64, part: Option<u64>) -> Option<(Block, Duration)> {
        let st = lock(&self.state);
        let r = st.rendition(rendition)?;
        r.playlist.part_target?;
        Some((r.playlist.block(msn, part), r.playlist.block_timeout()))
    }

    /// Changes of any playlist of the session (blocking requests wait on it).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// An init segment of a low-latency rendition.
    pub fn init_segment(&self, rendition: &str, id: u32) -> Option<Bytes> {
        let st = lock(&self.state);
        let r = st.rendition(rendition)?;
        r.inits.get(&id).cloned()
    }

    /// A part, or whether it is the next one to be written (a preload hint's target) when it
    /// is not there yet.
    pub fn part(&self, rendition: &str, seq: u64, index: usize) -> PartLookup {
        let st = lock(&self.state);
        let Some(r) = st.rendition(rendition) else {
            return PartLookup::Missing;
        };
        if let Some(bytes) = r.parts.get(&(seq, index)) {
            return PartLookup::Ready(bytes.clone());
        }
        let next = seq == r.playlist.open_seq() && index == r.playlist.open_parts.len();
        if next && !r.playlist.ended && r.playlist.part_target.is_some() {
            PartLookup::Next(r.playlist.block_timeout())
        } else {
            PartLookup::Missing
        }
    }

    /// Segment bytes while the segment is in the window.
    pub fn segment(&self, rendition: &str, seq: u64) -> Option<Bytes> {
        let st = lock(&self.state);
        let r = st.rendition(rendition)?;
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

/// What [`Session::part`] found.
pub enum PartLookup {
    Ready(Bytes),
    /// The next part (a preload hint): worth waiting for, up to this long.
    Next(Duration),
    Missing,
}

impl SessionState {
    fn rendition(&self, name: &str) -> Option<&RenditionState> {
        self.renditions.iter().find(|r| r.rendition.name == name)
    }
    /// A playlist changed: every rendered playlist (they carry each other's rendition reports)
    /// and the master are stale.
    fn changed(&mut self) {
        for r in &mut self.renditions {
            r.rendered = Default::default();
        }
        self.master = None;
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

    fn cmaf(&self, rendition: usize, output: PartOutput, info: Option<RenditionInfo>) {
        match output {
            PartOutput::Segment {
                bytes, start, end, ..
            } => self.session.add_fragment(
                ClosedFragment {
                    rendition,
                    bytes,
                    start,
                    end,
                },
                info,
                self.started,
                self.clock,
            ),
            other => self.session.add_cmaf(rendition, other, info),
        }
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

/// The master's description of a rendition, live and (through the recorder) in the VOD master.
fn stream_attributes(info: Option<&RenditionInfo>, has_audio: bool) -> StreamAttributes {
    let audio = if has_audio { ",mp4a.40.2" } else { "" };
    StreamAttributes {
        codecs: info.map(|i| format!("{}{audio}", i.codecs)),
        resolution: info.map(|i| (i.width, i.height)),
        frame_rate: info.and_then(|i| i.frame_rate),
    }
}

fn render_session_master(st: &SessionState) -> Option<String> {
    let served = st.renditions.iter().filter(|r| r.served);
    if !master_ready(served.clone().map(|r| r.playlist.segments.len())) {
        return None;
    }
    let variants: Vec<Variant> = served
        .filter(|r| !r.playlist.segments.is_empty())
        .map(|r| {
            let audio_kbps = r
                .rendition
                .audio_kbps
                .unwrap_or(if r.rendition.is_source() { 0 } else { 128 });
            let configured = u64::from(r.rendition.video_kbps.unwrap_or(0) + audio_kbps) * 1000;
            let (peak, avg) = r.playlist.bandwidth().unwrap_or((configured, configured));
            Variant {
                average_bandwidth: Some(avg),
                ..Variant::of_rendition(
                    &r.rendition.name,
                    peak,
                    stream_attributes(r.info.as_ref(), st.has_audio),
                )
            }
        })
        .collect();
    (!variants.is_empty()).then(|| render_master(&variants))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(rendition: usize, seq: u64) -> ClosedFragment {
        ClosedFragment {
            rendition,
            bytes: Bytes::from_static(&[0x47; 188]),
            start: Duration::from_secs(seq * 2),
            end: Duration::from_secs(seq * 2 + 2),
        }
    }

    fn info(width: u32, height: u32) -> RenditionInfo {
        RenditionInfo {
            width,
            height,
            frame_rate: Some(30.0),
            codecs: "avc1.64001f".into(),
        }
    }

    #[test]
    fn the_master_lists_only_the_renditions_the_ladder_serves() {
        let cfg = RoomConfig::for_test("lobby", "/nonexistent".into());
        let (events, _) = broadcast::channel(16);
        let session = Session::new(&cfg, events, Metrics::default());
        session.begin_epoch();
        // Default ladder: source, 720p, 360p; this source's ladder dropped 720p.
        session.serve(&[0, 2]);
        assert_eq!(session.rendition_names(), ["source", "360p"]);
        let (started, clock) = (Utc::now(), Instant::now());
        session.add_fragment(fragment(0, 0), Some(info(640, 360)), started, clock);
        assert!(
            session.master_playlist().is_none(),
            "360p has no segment yet"
        );
        session.add_fragment(fragment(2, 0), Some(info(640, 360)), started, clock);
        let master = session
            .master_playlist()
            .expect("every served rendition has a segment");
        let text = String::from_utf8_lossy(&master.body).into_owned();
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("master");
        let uris: Vec<&str> = parsed.variants.iter().map(|v| v.uri.as_str()).collect();
        assert_eq!(uris, ["source/index.m3u8", "360p/index.m3u8"], "{text}");
    }

    /// A low-latency session of `source` + `360p` with 2 s segments and a 6 s window, and
    /// its epoch sink.
    fn low_latency_session() -> (Arc<Session>, EpochSink) {
        let mut cfg = RoomConfig::for_test("lobby", "/nonexistent".into());
        cfg.latency = Latency::Low;
        cfg.dvr_window_seconds = 6;
        cfg.renditions.truncate(2);
        let (events, _) = broadcast::channel(64);
        let session = Arc::new(Session::new(&cfg, events, Metrics::default()));
        let sink = EpochSink {
            session: session.clone(),
            started: Utc::now(),
            clock: Instant::now(),
        };
        (session, sink)
    }

    fn part(sink: &EpochSink, rendition: usize, byte: u8) {
        sink.cmaf(
            rendition,
            PartOutput::Part {
                bytes: Bytes::from(vec![byte; 10]),
                duration: Duration::from_millis(500),
                independent: byte.is_multiple_of(4),
            },
            None,
        );
    }

    fn segment(sink: &EpochSink, rendition: usize, seq: u64) {
        sink.cmaf(
            rendition,
            PartOutput::Segment {
                bytes: Bytes::from(vec![0; 40]),
                start: Duration::from_secs(2 * seq),
                end: Duration::from_secs(2 * seq + 2),
                init: 1,
            },
            None,
        );
    }

    /// Review finding: segment, part and init names restart with every session (`0.m4s`,
    /// `0.0.m4s`, `init-1.mp4`; `0.ts` in standard rooms) under the same room URL, and the origin
    /// serves them `immutable` for `segmentMaxAgeSeconds` (a day by default). A CDN that kept
    /// yesterday's session serves it for today's names. Run with `--run-ignored all`.
    #[test]
    #[ignore = "review finding: media names are reused across sessions while cached as immutable"]
    fn two_sessions_of_a_room_never_serve_different_bytes_under_one_name() {
        let names = |fill: u8| {
            let (session, sink) = low_latency_session();
            sink.cmaf(
                0,
                PartOutput::Init {
                    id: 1,
                    bytes: Bytes::from(vec![fill; 4]),
                },
                None,
            );
            for i in 0..4 {
                part(&sink, 0, fill.wrapping_add(i));
            }
            segment(&sink, 0, 0);
            let playlist = session
                .media_playlist("source", Skip::Nothing)
                .expect("source");
            let text = String::from_utf8_lossy(&playlist.body).into_owned();
            let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("playlist");
            let mut names: Vec<String> = parsed.segments.iter().map(|s| s.uri.clone()).collect();
            names.extend(
                parsed
                    .segments
                    .iter()
                    .filter_map(|s| Some(s.map.as_ref()?.uri.clone())),
            );
            names
        };
        let (yesterday, today) = (names(1), names(9));
        let reused: Vec<&String> = today.iter().filter(|n| yesterday.contains(n)).collect();
        assert!(
            reused.is_empty(),
            "names served again with other bytes: {reused:?}"
        );
    }

    #[test]
    fn low_latency_sessions_serve_parts_hint_the_next_and_forget_what_left_the_window() {
        let (session, sink) = low_latency_session();
        for r in 0..2 {
            sink.cmaf(
                r,
                PartOutput::Init {
                    id: 1,
                    bytes: Bytes::from_static(b"init"),
                },
                None,
            );
        }
        // Ten segments of four parts in each rendition; the source one part ahead at the end.
        for seq in 0..10u64 {
            for r in 0..2 {
                for i in 0..4 {
                    part(&sink, r, (seq * 4 + i) as u8);
                }
                segment(&sink, r, seq);
            }
        }
        part(&sink, 0, 200);
        let source = session
            .media_playlist("source", Skip::Nothing)
            .expect("source");
        let text = String::from_utf8_lossy(&source.body).into_owned();
        assert!(
            text.contains(
                "#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=9,LAST-PART=3"
            ),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"10.1.m4s\""),
            "{text}"
        );
        let other = session.media_playlist("720p", Skip::Nothing).expect("720p");
        assert!(
            String::from_utf8_lossy(&other.body).contains(
                "#EXT-X-RENDITION-REPORT:URI=\"../source/index.m3u8\",LAST-MSN=10,LAST-PART=0"
            ),
            "reports follow the other rendition's parts"
        );
        assert!(matches!(session.part("source", 10, 0), PartLookup::Ready(b) if b[0] == 200));
        assert!(matches!(session.part("source", 9, 3), PartLookup::Ready(b) if b[0] == 39));
        assert!(
            matches!(session.part("source", 10, 1), PartLookup::Next(t) if t == Duration::from_secs(6))
        );
        assert!(
            matches!(session.part("source", 10, 2), PartLookup::Missing),
            "not the next part"
        );
        assert!(matches!(session.part("source", 11, 0), PartLookup::Missing));
        // The 6 s window holds segments 7..=9: older parts are gone even though fewer than six
        // segments passed since.
        assert!(matches!(session.part("source", 7, 0), PartLookup::Ready(_)));
        assert!(matches!(session.part("source", 6, 3), PartLookup::Missing));
        assert!(matches!(session.part("nope", 10, 1), PartLookup::Missing));
        assert_eq!(
            session.init_segment("source", 1).as_deref(),
            Some(&b"init"[..])
        );
        assert!(session.init_segment("source", 2).is_none());
        assert!(matches!(
            session.block("source", 10, Some(1)),
            Some((Block::Wait, _))
        ));
        assert!(matches!(
            session.block("source", 10, Some(0)),
            Some((Block::Ready, _))
        ));
        assert!(session.block("nope", 0, None).is_none());
        session.end();
        assert!(
            matches!(session.part("source", 10, 1), PartLookup::Missing),
            "ended: no more parts"
        );
    }

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
