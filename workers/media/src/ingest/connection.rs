//! The thin tokio loop around [`RtmpCore`]: one task per publisher connection. It moves bytes
//! between the socket and the core, asks the server which room a key belongs to, muxes the
//! source rendition inline ([`SourceSegmenter`]), and feeds the encoded rungs' pipeline through
//! a bounded channel drained by a blocking thread, so a slow transcoder stalls the socket instead
//! of growing memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::FutureExt;
use roomcast_rtmp::io::write_by_deadline;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::error::{Error, RefuseReason, Result};
use crate::ingest::key::authorize;
use crate::ingest::rtmp::{IngestEvent, Output, RtmpCore};
use crate::limits::{self, Admitted};
use crate::metrics::{self, RefusedLabels};
use crate::mux::boundary::{KeyframeGap, keyframe_gap_limit};
use crate::mux::flv::{self, FlvMuxer, FlvOutput, Tag, TagKind};
use crate::mux::fragment::FragmentSink;
use crate::mux::passthrough::{SourceHints, SourceSegmenter};
use crate::mux::timeline::{ClockWatch, Timeline};
use crate::room::{Publish, Room, session::EpochSink};
use crate::server::MediaServer;
use crate::transcode::ladder::{self, SourceVideo};
use crate::transcode::pipeline::{FINISH_TIMEOUT, PipelineSpec, TranscodePipeline};

/// FLV chunks queued between the socket task and the pipeline thread.
const FEED_QUEUE: usize = 64;
/// No bitrate check in a publish's first seconds (the window fills, the encoder flushes).
const BITRATE_WARMUP: Duration = Duration::from_secs(5);
/// How far above `maxBitrateKbps` the 5 s average may go without counting as an overrun.
const BITRATE_TOLERANCE_PERCENT: u64 = 25;
/// How long an overrun may last before the publisher is cut: two whole averaging windows.
const BITRATE_OVERRUN_GRACE: Duration = Duration::from_secs(10);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

struct Feeder {
    tx: mpsc::Sender<Bytes>,
    done: oneshot::Receiver<Result<()>>,
}

/// The room's claim of one accepted publish. Dropped without [`PublishClaim::release`] (the
/// connection's task panicked or was cancelled) it still frees the room: the publisher leaves
/// (the session ends after the reconnect grace) and the ingest count goes down, so the next
/// publisher is accepted instead of meeting `AlreadyLive` until the process restarts.
struct PublishClaim {
    room: Arc<Room>,
    conn: u64,
    armed: bool,
}

impl PublishClaim {
    fn new(room: Arc<Room>, conn: u64) -> Self {
        room.ingests.fetch_add(1, Ordering::SeqCst);
        PublishClaim {
            room,
            conn,
            armed: true,
        }
    }

    /// The orderly way out: the publisher leaves now, the ingest count goes down on drop.
    fn release(&mut self, end_now: bool) -> Option<u64> {
        self.armed = false;
        self.room.publisher_left(self.conn, end_now)
    }
}

impl Drop for PublishClaim {
    fn drop(&mut self) {
        if self.armed {
            tracing::error!("publish ended without cleanup (panic or cancel); freeing the room");
            // The grace timer needs a runtime; without one, end the publish at once.
            let in_runtime = tokio::runtime::Handle::try_current().is_ok();
            self.room.publisher_left(self.conn, !in_runtime);
        }
        self.room.ingests.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Publishing {
    room: Arc<Room>,
    claim: PublishClaim,
    publish: Publish,
    flv: FlvMuxer,
    /// The source rendition, muxed on this task.
    source: Option<SourceSegmenter>,
    /// The encoded rungs' pipeline, when the room has any.
    feeder: Option<Feeder>,
    metadata: Option<SourceHints>,
    /// Keeps later epochs of the session waiting until this one's pipeline drained.
    slot: Option<tokio::sync::OwnedMutexGuard<()>>,
    since: Instant,
    last_over_limit: Option<Instant>,
    /// Since when the average has been above the limit plus tolerance.
    over_since: Option<Instant>,
    /// Cuts a source that stops sending keyframes (set when the stream starts).
    keyframes: Option<KeyframeGap>,
    keyframe_timeout: Duration,
    /// The keyframe limit: the timeout, at least four segment lengths.
    gap_limit: Duration,
    /// The publisher's timestamps, rebased before anything segments on them.
    timeline: Timeline,
    timestamp_jumps: u64,
    /// Cuts a source whose video time stalls against the wall clock (set with `keyframes`).
    clock: Option<ClockWatch>,
}

impl Publishing {
    /// The publish `conn` was granted in `room`; nothing muxed yet.
    fn new(room: Arc<Room>, conn: u64, publish: Publish, keyframe_timeout: Duration) -> Self {
        let gap_limit = keyframe_gap_limit(keyframe_timeout, room.cfg.segment());
        Publishing {
            claim: PublishClaim::new(room.clone(), conn),
            room,
            publish,
            flv: FlvMuxer::new(),
            source: None,
            feeder: None,
            metadata: None,
            slot: None,
            since: Instant::now(),
            last_over_limit: None,
            over_since: None,
            keyframes: None,
            keyframe_timeout,
            gap_limit,
            timeline: Timeline::new(gap_limit),
            timestamp_jumps: 0,
            clock: None,
        }
    }

    /// The tag's timestamp on the rebased timeline; a jump is logged (the first of a publish
    /// as a warning: a hostile peer may jump on every frame) and counted.
    fn rebase(&mut self, kind: TagKind, timestamp_ms: u32) -> u32 {
        let rebased = self.timeline.rebase(kind, timestamp_ms);
        if let Some(jump_ms) = rebased.jump_ms {
            self.timestamp_jumps += 1;
            if self.timestamp_jumps == 1 {
                tracing::warn!(
                    ?kind,
                    jump_ms,
                    "publisher timestamps jumped; rebased to carry on one frame later"
                );
            } else {
                tracing::debug!(?kind, jump_ms, "publisher timestamps jumped again; rebased");
            }
            self.room
                .metrics
                .ingest_timestamp_jumps
                .get_or_create(&metrics::room(self.room.id()))
                .inc();
        }
        rebased.timestamp_ms
    }

    /// `maxBitrateKbps` is enforced over a 5 s sliding average of the bytes read from the
    /// socket (RTMP framing included, see [`Room::ingest`]), after the first 5 s of a publish
    /// (an encoder flushes its buffer on connect). Any reading above the limit is logged (at
    /// most every 5 s) and counted in `ingest_over_limit_total`; the publisher is cut
    /// (`bitrate_exceeded`) only when the average stays above the limit by more than
    /// [`BITRATE_TOLERANCE_PERCENT`] for [`BITRATE_OVERRUN_GRACE`]: keyframe bursts and CBR
    /// overshoot pass, a source that would outgrow the memory the room was sized for does not.
    fn check_bitrate(&mut self, kbps: u64, now: Instant) -> Result<()> {
        let max = u64::from(self.room.cfg.max_bitrate_kbps);
        if max == 0 || now.saturating_duration_since(self.since) < BITRATE_WARMUP {
            return Ok(());
        }
        if kbps * 100 <= max * (100 + BITRATE_TOLERANCE_PERCENT) {
            self.over_since = None;
        } else {
            let since = *self.over_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= BITRATE_OVERRUN_GRACE {
                tracing::warn!(
                    kbps,
                    max_kbps = max,
                    "ingest bitrate stayed above maxBitrateKbps; cutting the publisher"
                );
                return Err(Error::Limit(limits::Limit::BitrateExceeded));
            }
        }
        if kbps <= max
            || self
                .last_over_limit
                .is_some_and(|t| now.saturating_duration_since(t) < BITRATE_WARMUP)
        {
            return Ok(());
        }
        self.last_over_limit = Some(now);
        tracing::warn!(kbps, max_kbps = max, "ingest bitrate above maxBitrateKbps");
        self.room
            .metrics
            .ingest_over_limit
            .get_or_create(&metrics::room(self.room.id()))
            .inc();
        Ok(())
    }
}

/// Serve one publisher connection until it closes, errs, goes over a limit, or the worker
/// shuts down. `slot` is the connection's place under the connection caps, freed on return.
pub async fn handle_connection(
    server: Arc<MediaServer>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    slot: Admitted,
) {
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "rtmp",
        conn,
        %peer,
        room = tracing::field::Empty,
        session = tracing::field::Empty
    );
    async move {
        let mut publishing = None;
        // A panic in the RTMP library (or anywhere in the session path) ends this connection
        // only; `finish` below, or the claim's drop guard, still frees the room.
        let result = std::panic::AssertUnwindSafe(run(
            &server,
            stream,
            conn,
            shutdown,
            &slot,
            &mut publishing,
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "connection task panicked");
            Err(Error::Limit(limits::Limit::LibraryPanic))
        });
        let shutting_down = server.is_shutting_down();
        if let Some(p) = publishing {
            finish(p, shutting_down).await;
        }
        match result {
            Ok(()) => tracing::info!("connection closed"),
            // Counted, and logged once per offending address.
            Err(Error::Limit(limit)) => {
                limits::refused(&server.metrics, &server.offenders, "rtmp", peer, limit)
            }
            Err(e) => tracing::warn!(error = %e, "connection ended with an error"),
        }
        drop(slot);
    }
    .instrument(span)
    .await
}

async fn finish(mut p: Publishing, end_now: bool) {
    // Free the room for a reconnect at once; the slot keeps the next epoch (and the end of the
    // session) waiting until this pipeline has drained.
    let generation = p.claim.release(end_now);
    if let Some(source) = p.source.take() {
        source.finish();
    }
    if let Some(feeder) = p.feeder.take() {
        drop(feeder.tx);
        match feeder.done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "pipeline did not finish cleanly"),
            Err(_) => tracing::warn!("pipeline thread vanished"),
        }
    }
    drop(p.slot.take());
    if end_now && let Some(g) = generation {
        p.room.end_session_if(g).await;
    }
}

async fn run(
    server: &Arc<MediaServer>,
    mut stream: TcpStream,
    conn: u64,
    mut shutdown: watch::Receiver<bool>,
    slot: &Admitted,
    publishing: &mut Option<Publishing>,
) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let mut core = RtmpCore::new(server.limits.session(), Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    // One timer for the whole connection, moved to the core's deadline only when it fires:
    // arming a timer per read would cost more than the read itself at 75 messages a second.
    let deadline = tokio::time::sleep_until(core.deadline().0.into());
    tokio::pin!(deadline);
    // Likewise one shutdown waiter, not one per read.
    let stop = shutdown.changed();
    tokio::pin!(stop);
    // Resolves only before a publish: a settled slot is never evicted.
    let evicted = slot.evicted();
    tokio::pin!(evicted);
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => r?,
            _ = deadline.as_mut() => {
                if let Some(limit) = core.expired(Instant::now()) {
                    return Err(Error::Limit(limit));
                }
                deadline.as_mut().reset(core.deadline().0.into());
                continue;
            }
            _ = stop.as_mut() => return Ok(()),
            _ = evicted.as_mut() => return Err(Error::Limit(limits::Limit::Listener(limits::Refusal::Evicted))),
        };
        if n == 0 {
            return Ok(());
        }
        if let Some(p) = publishing.as_mut() {
            let kbps = p.room.ingest(n);
            p.check_bitrate(kbps, Instant::now())?;
        }
        let outputs = core.handle_input(&buf[..n], Instant::now())?;
        let mut queue: std::collections::VecDeque<Output> = outputs.into();
        while let Some(out) = queue.pop_front() {
            match out {
                Output::Send(bytes) => write_by_deadline(&mut stream, &core, &bytes).await?,
                Output::Event(IngestEvent::PublishRequested {
                    request_id,
                    app,
                    key,
                }) => {
                    if publishing.is_some() {
                        return Err(roomcast_rtmp::Error::Rtmp(
                            "second publish on one connection".into(),
                        )
                        .into());
                    }
                    match authorize(server, &app, &key)
                        .and_then(|room| room.begin_publish(conn).map(|p| (room, p)))
                    {
                        Ok((room, publish)) => {
                            // Every later line of this connection (and its pipeline threads)
                            // names the room and the session.
                            let span = tracing::Span::current();
                            span.record("room", tracing::field::display(room.id()));
                            span.record("session", publish.session.id.as_str());
                            tracing::info!(epoch = publish.epoch, "publish accepted");
                            *publishing = Some(Publishing::new(
                                room,
                                conn,
                                publish,
                                server.limits.keyframe_timeout(),
                            ));
                            slot.settle();
                            queue.extend(core.accept_publish(request_id, Instant::now())?);
                        }
                        Err(reason) => {
                            let room = match reason {
                                RefuseReason::AlreadyLive => server
                                    .rooms
                                    .by_key(key.as_bytes())
                                    .map(|r| r.id().to_string())
                                    .unwrap_or_default(),
                                _ => String::new(),
                            };
                            tracing::warn!(%reason, key = %key, room = %room, "publish refused");
                            server
                                .metrics
                                .publishes_refused
                                .get_or_create(&RefusedLabels {
                                    room,
                                    reason: reason.label(),
                                })
                                .inc();
                            for o in core.reject_publish(request_id, &reason.to_string())? {
                                if let Output::Send(b) = o {
                                    write_by_deadline(&mut stream, &core, &b).await?;
                                }
                            }
                            let _ = stream.shutdown().await;
                            return Err(Error::Refused(reason));
                        }
                    }
                }
                Output::Event(IngestEvent::Metadata(md)) => {
                    if let Some(p) = publishing.as_mut() {
                        if md.audio_codec_id.is_none() && md.video_codec_id.is_some() {
                            p.flv.metadata_without_audio();
                        }
                        p.metadata = Some(SourceHints {
                            size: md.video_width.zip(md.video_height),
                            frame_rate: md.video_frame_rate.map(f64::from),
                            video_kbps: md.video_bitrate_kbps,
                        });
                    }
                }
                Output::Event(IngestEvent::Video { timestamp_ms, data }) => {
                    media(publishing, TagKind::Video, timestamp_ms, data).await?
                }
                Output::Event(IngestEvent::Audio { timestamp_ms, data }) => {
                    media(publishing, TagKind::Audio, timestamp_ms, data).await?
                }
                Output::Event(IngestEvent::PublishFinished) => {
                    tracing::info!("publisher finished");
                    return Ok(());
                }
            }
        }
    }
}

async fn media(
    publishing: &mut Option<Publishing>,
    kind: TagKind,
    timestamp_ms: u32,
    data: Bytes,
) -> Result<()> {
    let Some(p) = publishing.as_mut() else {
        return Ok(());
    };
    let timestamp_ms = p.rebase(kind, timestamp_ms);
    let out = p
        .flv
        .push(kind, timestamp_ms, data)
        .inspect_err(|e| refuse_stream(p, e))?;
    match out {
        FlvOutput::Held | FlvOutput::Dropped => Ok(()),
        FlvOutput::Start(shape, tags) => {
            if !shape.has_audio {
                tracing::warn!("stream has no audio track; renditions are video-only");
            }
            p.publish.session.set_has_audio(shape.has_audio);
            // Wait until the previous epoch's outputs have drained.
            p.slot = Some(p.publish.session.pipeline_slot.clone().lock_owned().await);
            let hints = p.metadata.unwrap_or_default();
            let sink: Arc<dyn FragmentSink> = Arc::new(EpochSink {
                session: p.publish.session.clone(),
                started: Utc::now(),
                clock: Instant::now(),
            });
            let renditions = &p.room.cfg.renditions;
            let video = SourceVideo::observe(&tags, &hints, p.room.cfg.max_bitrate_kbps);
            let ladder = ladder::choose(renditions, &video);
            ladder.log(renditions, &video);
            p.publish.session.serve(&ladder.served);
            let segment = p.room.cfg.segment();
            p.keyframes = Some(KeyframeGap::new(p.keyframe_timeout, segment));
            p.clock = Some(ClockWatch::new(p.gap_limit));
            let sources: Vec<usize> = (0..renditions.len())
                .filter(|&i| renditions[i].is_source())
                .collect();
            if !sources.is_empty() {
                p.source = Some(SourceSegmenter::new(
                    sources,
                    segment,
                    hints,
                    sink.clone(),
                    p.room.cfg.part_target(),
                ));
            }
            if !ladder.encoded.is_empty() {
                let spec = PipelineSpec {
                    renditions: ladder.encoded.clone(),
                    segment,
                    has_audio: shape.has_audio,
                    source_size: video.size,
                    frame_rate: video.frame_rate,
                    speed_preset: p.room.speed_preset.clone(),
                    part_target: p.room.cfg.part_target(),
                };
                p.feeder = Some(spawn_feeder(p, spec, ladder.encoded_sink(sink))?);
            }
            if let Some(feeder) = &p.feeder {
                feeder
                    .tx
                    .send(flv::stream_header(shape, &tags))
                    .await
                    .map_err(|_| Error::Gst("pipeline stopped".into()))?;
            }
            for tag in &tags {
                to_source(p, tag)?;
            }
            Ok(())
        }
        FlvOutput::Tag(tag) => {
            to_source(p, &tag)?;
            match &p.feeder {
                Some(f) => {
                    f.tx.send(tag.to_flv())
                        .await
                        .map_err(|_| Error::Gst("pipeline stopped".into()))
                }
                None => Ok(()),
            }
        }
    }
}

/// Mux a tag into the source rendition; input it cannot mux ends the publish, like a codec the
/// worker does not take. A source that stopped sending keyframes, or whose video time stands
/// still (or crawls) against the wall clock, is cut here too, before its open segments grow
/// further.
fn to_source(p: &mut Publishing, tag: &Tag) -> Result<()> {
    if let (Some(keyframe), Some(gap)) = (tag.avc_keyframe(), p.keyframes.as_mut())
        && !gap.frame(tag.timestamp_ms, Instant::now(), keyframe)
    {
        tracing::warn!(
            timeout_seconds = p.keyframe_timeout.as_secs(),
            "no keyframe from the source for too long; cutting the publisher"
        );
        return Err(Error::Limit(limits::Limit::NoKeyframe));
    }
    if tag.avc_keyframe().is_some()
        && let Some(clock) = p.clock.as_mut()
        && !clock.video(tag.timestamp_ms, Instant::now())
    {
        tracing::warn!(
            limit_seconds = p.gap_limit.as_secs(),
            "the source's video timestamps fell behind the wall clock; cutting the publisher"
        );
        return Err(Error::Limit(limits::Limit::TimestampsStalled));
    }
    let Some(source) = p.source.as_mut() else {
        return Ok(());
    };
    source.push(tag).inspect_err(|e| refuse_stream(p, e))
}

/// Log and count a stream the worker cannot take; the caller then closes the connection.
fn refuse_stream(p: &Publishing, e: &Error) {
    tracing::warn!(error = %e, "unsupported stream; closing the connection");
    p.room
        .metrics
        .publishes_refused
        .get_or_create(&RefusedLabels {
            room: p.room.id().to_string(),
            reason: e.label(),
        })
        .inc();
}

fn spawn_feeder(p: &Publishing, spec: PipelineSpec, sink: Arc<dyn FragmentSink>) -> Result<Feeder> {
    let pipeline = TranscodePipeline::start(&spec, sink).inspect_err(|_| {
        p.room
            .metrics
            .pipeline_errors
            .get_or_create(&metrics::room(p.room.id()))
            .inc();
    })?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(FEED_QUEUE);
    let (done_tx, done_rx) = oneshot::channel();
    let span = tracing::Span::current();
    let room_metrics = (p.room.metrics.clone(), metrics::room(p.room.id()));
    std::thread::Builder::new()
        .name("gst-feed".into())
        .spawn(move || {
            let _e = span.enter();
            let mut result = Ok(());
            while let Some(bytes) = rx.blocking_recv() {
                if let Err(e) = pipeline.push(bytes) {
                    room_metrics
                        .0
                        .pipeline_errors
                        .get_or_create(&room_metrics.1)
                        .inc();
                    result = Err(e);
                    break;
                }
            }
            drop(rx);
            let finished = pipeline.finish(FINISH_TIMEOUT);
            let _ = done_tx.send(result.and(finished));
        })
        .map_err(Error::Net)?;
    Ok(Feeder { tx, done: done_rx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MediaOptions, RoomConfig};

    fn publishing(room: &Arc<Room>, conn: u64) -> Publishing {
        let publish = room.begin_publish(conn).expect("publish accepted");
        Publishing::new(room.clone(), conn, publish, Duration::from_secs(20))
    }

    fn lobby() -> (tempfile::TempDir, Arc<MediaServer>, Arc<Room>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key");
        std::fs::write(&key, "key").expect("key");
        let server = MediaServer::new(
            vec![RoomConfig::for_test("lobby", key)],
            MediaOptions {
                speed_preset: "ultrafast".into(),
                limits: Default::default(),
            },
        )
        .expect("server");
        let room = server.rooms.iter().next().expect("room").clone();
        (dir, server, room)
    }

    #[tokio::test]
    async fn a_sustained_overrun_of_max_bitrate_cuts_the_publisher() {
        let (_dir, _server, room) = lobby();
        assert_eq!(room.cfg.max_bitrate_kbps, 8000);
        let mut p = publishing(&room, 1);
        let start = p.since;
        let at = |s: u64| start + Duration::from_secs(s);
        let cut = |r: Result<()>| matches!(r, Err(Error::Limit(limits::Limit::BitrateExceeded)));
        // The first seconds are not judged (the encoder flushes its buffer on connect).
        assert!(p.check_bitrate(100_000, at(1)).is_ok());
        // 20 % over: within the tolerance, for a minute.
        for s in 5..65 {
            assert!(p.check_bitrate(9_600, at(s)).is_ok(), "tolerated at {s} s");
        }
        // 50 % over: cut once the overrun has lasted 10 s, not before.
        for s in 65..75 {
            assert!(
                p.check_bitrate(12_000, at(s)).is_ok(),
                "still in grace at {s} s"
            );
        }
        assert!(cut(p.check_bitrate(12_000, at(75))));
    }

    #[tokio::test]
    async fn a_dip_under_the_limit_restarts_the_overrun_grace() {
        let (_dir, _server, room) = lobby();
        let mut p = publishing(&room, 1);
        let start = p.since;
        let at = |s: u64| start + Duration::from_secs(s);
        for s in 5..14 {
            assert!(p.check_bitrate(20_000, at(s)).is_ok());
        }
        assert!(p.check_bitrate(7_000, at(14)).is_ok());
        for s in 15..25 {
            assert!(
                p.check_bitrate(20_000, at(s)).is_ok(),
                "grace restarted at {s} s"
            );
        }
        assert!(p.check_bitrate(20_000, at(25)).is_err());
    }

    #[tokio::test]
    async fn a_panic_after_publish_frees_the_room_for_the_next_publisher() {
        let (_dir, _server, room) = lobby();
        // The session path panics (as rml_rtmp may on malformed input) while publishing.
        let task = tokio::spawn({
            let room = room.clone();
            async move {
                let _publishing = publishing(&room, 1);
                panic!("rml_rtmp panicked");
            }
        });
        assert!(task.await.is_err(), "the task panicked");
        assert_eq!(room.ingests.load(Ordering::SeqCst), 0);
        let next = room.begin_publish(2);
        assert!(next.is_ok(), "next publisher refused: {:?}", next.err());
    }
}
