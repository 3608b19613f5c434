//! roomcast's whole ingest path for one publisher, as the connection loop drives it: a valid
//! handshake, then the fuzz input as everything the publisher sends; every publish is accepted,
//! and every audio/video message has its timestamp rebased by the ingest's timeline and goes
//! through the FLV muxer into the source segmenter (the passthrough rendition's TS muxer, or its
//! CMAF part muxer when the input's length is odd: a low-latency room).
#![no_main]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use roomcast_media::ingest::rtmp::{IngestEvent, Output, RtmpCore};
use roomcast_media::limits::SessionLimits;
use roomcast_media::mux::flv::{FlvMuxer, FlvOutput, TagKind};
use roomcast_media::mux::fragment::{ClosedFragment, FragmentSink, RenditionInfo};
use roomcast_media::mux::parts::PartOutput;
use roomcast_media::mux::passthrough::{SourceHints, SourceSegmenter};
use roomcast_media::mux::timeline::Timeline;

struct Discard;
impl FragmentSink for Discard {
    fn fragment_closed(&self, _: ClosedFragment, _: Option<RenditionInfo>) {}
    fn cmaf(&self, _: usize, _: PartOutput, _: Option<RenditionInfo>) {}
}

/// C0 + C1 (simple handshake) and C2: the server echoes C1 as S2 and accepts any C2.
fn handshake() -> Vec<u8> {
    let mut bytes = vec![3u8];
    bytes.extend(std::iter::repeat_n(0u8, 1536 * 2));
    bytes
}

fuzz_target!(|data: &[u8]| {
    // Time stands still: the deadlines are the core's own unit tests; here every byte counts.
    let now = Instant::now();
    let mut core = RtmpCore::new(SessionLimits::default(), now);
    if core.handle_input(&handshake(), now).is_err() {
        return;
    }
    // The length's parity picks the room's latency, so the committed corpus covers both.
    let part_target = (data.len() % 2 == 1).then(|| Duration::from_millis(500));
    let mut flv = FlvMuxer::new();
    // The keyframe limit of 2 s segments: four of them.
    let mut timeline = Timeline::new(Duration::from_secs(8));
    let mut segmenter: Option<SourceSegmenter> = None;
    for piece in data.chunks(1024) {
        let Ok(outputs) = core.handle_input(piece, now) else {
            return;
        };
        let mut pending = outputs;
        while let Some(output) = pending.pop() {
            let Output::Event(event) = output else { continue };
            let (kind, timestamp_ms, data) = match event {
                IngestEvent::PublishRequested { request_id, .. } => {
                    if let Ok(more) = core.accept_publish(request_id, now) {
                        pending.extend(more);
                    }
                    continue;
                }
                IngestEvent::Video { timestamp_ms, data } => (TagKind::Video, timestamp_ms, data),
                IngestEvent::Audio { timestamp_ms, data } => (TagKind::Audio, timestamp_ms, data),
                _ => continue,
            };
            let timestamp_ms = timeline.rebase(kind, timestamp_ms).timestamp_ms;
            let tags = match flv.push(kind, timestamp_ms, data) {
                Ok(FlvOutput::Start(_, held)) => {
                    segmenter = Some(SourceSegmenter::new(
                        vec![0],
                        Duration::from_secs(2),
                        SourceHints::default(),
                        Arc::new(Discard),
                        part_target,
                    ));
                    held
                }
                Ok(FlvOutput::Tag(tag)) => vec![tag],
                _ => continue,
            };
            if let Some(s) = segmenter.as_mut() {
                for tag in &tags {
                    if s.push(tag).is_err() {
                        return;
                    }
                }
            }
        }
    }
});
