//! The source rendition without GStreamer: FLV tags from the publisher straight into MPEG-TS
//! segments ([`crate::mux::ts::TsMuxer`]), cut on the source's keyframes by the same rule
//! ([`Boundaries`]) the GStreamer graph of the encoded rungs uses. Runs inline on the
//! connection's task: a tag costs a few copies and no thread hand-off, which is what a
//! source-only room should cost. A low-latency room gets CMAF parts instead, from the same
//! tags and the same cuts ([`PartSegmenter`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::mux::boundary::Boundaries;
use crate::mux::codec::{AacConfig, AvcConfig};
use crate::mux::flv::{Tag, TagKind};
use crate::mux::fragment::{ClosedFragment, FragmentSink, RenditionInfo, deliver_parts};
use crate::mux::parts::PartSegmenter;
use crate::mux::ts::TsMuxer;

const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;
const FRAME_TYPE_KEY: u8 = 1;

/// What the publisher's metadata said, used when the SPS does not say it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceHints {
    pub size: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// `videodatarate`, kbit/s: what the ladder judges rungs against.
    pub video_kbps: Option<u32>,
}

/// Segments the source rendition(s) of one epoch.
pub struct SourceSegmenter {
    /// Indexes of the source renditions in the room's list (normally exactly one).
    renditions: Vec<usize>,
    hints: SourceHints,
    sink: Arc<dyn FragmentSink>,
    boundaries: Boundaries,
    aac: Option<AacConfig>,
    mux: Option<TsMuxer>,
    info: Option<RenditionInfo>,
    /// Presentation time of the first video frame: fragment times are relative to it.
    first_ms: Option<i64>,
    /// Start of the open segment, once a keyframe opened one.
    open_since_ms: Option<i64>,
    /// Latest presentation time, and the decode time and duration of the last frame.
    last_video_ms: Option<i64>,
    last_dts_ms: Option<i64>,
    frame_ms: i64,
    data: Vec<u8>,
    /// Low latency: CMAF parts instead of MPEG-TS segments.
    parts: Option<PartSegmenter>,
}

/// A publisher's ms timestamp in 90 kHz ticks (FLV timestamps are never negative).
fn ticks(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0) * 90
}

fn si24(b: &[u8]) -> i32 {
    (i32::from(b[0]) << 24 | i32::from(b[1]) << 16 | i32::from(b[2]) << 8) >> 8
}

impl SourceSegmenter {
    pub fn new(
        renditions: Vec<usize>,
        segment: Duration,
        hints: SourceHints,
        sink: Arc<dyn FragmentSink>,
        part_target: Option<Duration>,
    ) -> Self {
        SourceSegmenter {
            renditions,
            hints,
            sink,
            boundaries: Boundaries::new(segment),
            aac: None,
            mux: None,
            info: None,
            first_ms: None,
            open_since_ms: None,
            last_video_ms: None,
            last_dts_ms: None,
            frame_ms: 0,
            // CMAF parts are built per part, not in one growing buffer.
            data: Vec::with_capacity(if part_target.is_some() { 0 } else { 1 << 20 }),
            parts: part_target.map(PartSegmenter::new),
        }
    }

    /// One FLV tag, in stream order. Errors only on input no player could decode.
    pub fn push(&mut self, tag: &Tag) -> Result<()> {
        let body: &Bytes = &tag.data;
        let ts = i64::from(tag.timestamp_ms);
        match tag.kind {
            TagKind::Video if body.len() >= 5 => match body[1] {
                AVC_SEQUENCE_HEADER => {
                    let avc = AvcConfig::parse(&body[5..])?;
                    self.info = Some(self.rendition_info(&avc));
                    if let Some(parts) = &mut self.parts {
                        parts.set_avc(avc);
                        return Ok(());
                    }
                    match &mut self.mux {
                        Some(mux) => mux.set_avc(avc),
                        None => self.mux = Some(TsMuxer::new(avc, self.aac)),
                    }
                    Ok(())
                }
                AVC_NALU => {
                    let keyframe = body[0] >> 4 == FRAME_TYPE_KEY;
                    let cts = si24(&body[2..5]);
                    if self.parts.is_some() {
                        self.cmaf_video(ts, cts, keyframe, body.slice(5..));
                        return Ok(());
                    }
                    self.video(ts, cts, keyframe, &body[5..])
                }
                _ => Ok(()), // end of sequence
            },
            TagKind::Audio if body.len() >= 2 => match body[1] {
                AAC_SEQUENCE_HEADER => {
                    let aac = AacConfig::parse(&body[2..])?;
                    self.aac = Some(aac);
                    if let Some(parts) = &mut self.parts {
                        parts.set_aac(aac);
                    }
                    if let Some(mux) = &mut self.mux {
                        mux.set_aac(aac);
                    }
                    Ok(())
                }
                AAC_RAW if self.parts.is_some() => {
                    if let Some(parts) = &mut self.parts {
                        parts.push_audio(ticks(ts), body.slice(2..));
                    }
                    self.deliver_parts();
                    Ok(())
                }
                AAC_RAW => match (&mut self.mux, self.open_since_ms) {
                    (Some(mux), Some(_)) => mux.write_audio(&mut self.data, ts, &body[2..]),
                    // Audio before the first keyframe has no segment to go to.
                    _ => Ok(()),
                },
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn video(&mut self, dts: i64, cts: i32, keyframe: bool, avcc: &[u8]) -> Result<()> {
        if self.mux.is_none() {
            return Ok(()); // no decoder configuration yet: nothing could decode this
        }
        let pts = dts + i64::from(cts);
        if keyframe {
            let first = *self.first_ms.get_or_insert(pts);
            let at = Duration::from_millis(pts.saturating_sub(first).max(0) as u64);
            if self.boundaries.keyframe_opens_segment(at) {
                self.close(pts);
            }
        }
        let Some(mux) = &mut self.mux else {
            return Ok(());
        };
        if keyframe && self.open_since_ms.is_none() {
            self.open_since_ms = Some(pts);
            mux.write_tables(&mut self.data);
        }
        if self.open_since_ms.is_none() {
            return Ok(()); // frames before the first keyframe cannot start a segment
        }
        // Decode times advance one frame at a time (presentation times jump around B-frames).
        if let Some(last) = self.last_dts_ms
            && dts > last
        {
            self.frame_ms = dts - last;
        }
        self.last_dts_ms = Some(dts);
        self.last_video_ms = Some(self.last_video_ms.map_or(pts, |l| l.max(pts)));
        mux.write_video(&mut self.data, dts, cts, keyframe, avcc)
    }

    /// A video frame of a low-latency room: segments open on the keyframes [`Boundaries`]
    /// picks, as in the MPEG-TS path.
    fn cmaf_video(&mut self, dts: i64, cts: i32, keyframe: bool, avcc: Bytes) {
        let pts = dts + i64::from(cts);
        let opens = keyframe && {
            let first = *self.first_ms.get_or_insert(pts);
            let at = Duration::from_millis(pts.saturating_sub(first).max(0) as u64);
            self.boundaries.keyframe_opens_segment(at)
        };
        if let Some(parts) = &mut self.parts {
            parts.push_video(ticks(dts), cts.saturating_mul(90), keyframe, opens, avcc);
        }
        self.deliver_parts();
    }

    fn deliver_parts(&mut self) {
        if let Some(parts) = &mut self.parts {
            let out = parts.drain();
            if !out.is_empty() {
                deliver_parts(&*self.sink, &self.renditions, out, self.info.as_ref());
            }
        }
    }

    /// Close the open segment at `end_ms`; the next keyframe opens the next one.
    fn close(&mut self, end_ms: i64) {
        let (Some(start), Some(first)) = (self.open_since_ms.take(), self.first_ms) else {
            return;
        };
        // The next segment is about as large as this one: reserve that, not a fixed size the
        // DVR window would hold on to for every segment.
        let next = self.data.len() + self.data.len() / 4;
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(next.max(64 * 1024)));
        if data.is_empty() || end_ms <= start {
            return;
        }
        let bytes = Bytes::from(data);
        let rel = |ms: i64| Duration::from_millis(ms.saturating_sub(first).max(0) as u64);
        for &rendition in &self.renditions {
            self.sink.fragment_closed(
                ClosedFragment {
                    rendition,
                    bytes: bytes.clone(),
                    start: rel(start),
                    end: rel(end_ms),
                },
                self.info.clone(),
            );
        }
    }

    /// End of the epoch: close the last segment after its last frame.
    pub fn finish(mut self) {
        if let Some(parts) = &mut self.parts {
            parts.finish();
            self.deliver_parts();
            return;
        }
        if let Some(last) = self.last_video_ms {
            self.close(last + self.frame_ms);
        }
    }

    fn rendition_info(&self, avc: &AvcConfig) -> RenditionInfo {
        let (width, height) = if avc.width > 0 && avc.height > 0 {
            (avc.width, avc.height)
        } else {
            self.hints.size.unwrap_or((0, 0))
        };
        RenditionInfo {
            width,
            height,
            frame_rate: avc
                .frame_rate
                .or(self.hints.frame_rate)
                .filter(|f| *f > 0.0),
            codecs: avc.codecs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::mux::parts::PartOutput;
    use crate::mux::ts::PACKET;

    #[derive(Default)]
    struct Collect(
        Mutex<Vec<(ClosedFragment, Option<RenditionInfo>)>>,
        Mutex<Vec<(usize, PartOutput)>>,
    );

    impl FragmentSink for Collect {
        fn fragment_closed(&self, fragment: ClosedFragment, info: Option<RenditionInfo>) {
            self.0.lock().expect("lock").push((fragment, info));
        }
        fn cmaf(&self, rendition: usize, output: PartOutput, _: Option<RenditionInfo>) {
            self.1.lock().expect("lock").push((rendition, output));
        }
    }

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xd8, 0x3d, 0xe6, 0xf0, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x31, 0x96,
    ];

    fn tag(kind: TagKind, timestamp_ms: u32, data: Vec<u8>) -> Tag {
        Tag {
            kind,
            timestamp_ms,
            data: Bytes::from(data),
        }
    }

    fn avc_header() -> Tag {
        let mut body = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        body.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        body.extend_from_slice(SPS);
        body.extend_from_slice(&[1, 0, 4, 0x68, 0xef, 0x8f, 0xcb]);
        tag(TagKind::Video, 0, body)
    }

    fn frame(ts: u32, key: bool) -> Tag {
        let nal = if key { 0x65 } else { 0x41 };
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 200, nal];
        body.resize(body.len() + 199, 0x5a);
        tag(TagKind::Video, ts, body)
    }

    /// Where [`feed`]'s stream is cut, in both renditions: (rendition, start ms, end ms).
    const CUTS: [(usize, u64, u64); 6] = [
        (0, 0, 2000),
        (2, 0, 2000),
        (0, 2000, 4000),
        (2, 2000, 4000),
        (0, 4000, 5500),
        (2, 4000, 5500),
    ];

    /// 5.5 s of 10 fps video with a keyframe a second, and audio, after both headers.
    fn feed(s: &mut SourceSegmenter) {
        s.push(&avc_header()).expect("config");
        s.push(&tag(TagKind::Audio, 0, vec![0xaf, 0, 0x12, 0x10]))
            .expect("asc");
        for ts in (100..=5500).step_by(100) {
            s.push(&frame(ts, (ts - 100) % 1000 == 0)).expect("frame");
            s.push(&audio(ts + 20)).expect("audio");
        }
    }

    fn audio(ts: u32) -> Tag {
        tag(TagKind::Audio, ts, vec![0xaf, 1, 0x21, 0x10, 0x04])
    }

    #[test]
    fn segments_are_cut_on_keyframes_and_start_with_tables() {
        let sink = Arc::new(Collect::default());
        let hints = SourceHints::default();
        let mut s = SourceSegmenter::new(
            vec![0, 2],
            Duration::from_secs(2),
            hints,
            sink.clone(),
            None,
        );
        s.push(&avc_header()).expect("config");
        s.push(&tag(TagKind::Audio, 0, vec![0xaf, 0, 0x12, 0x10]))
            .expect("asc");
        // A frame and audio before the first keyframe have no segment to go to.
        s.push(&frame(0, false)).expect("frame");
        s.push(&audio(10)).expect("audio");
        for ts in (100..=5500).step_by(100) {
            s.push(&frame(ts, (ts - 100) % 1000 == 0)).expect("frame");
            s.push(&audio(ts + 20)).expect("audio");
        }
        assert_eq!(
            sink.0.lock().expect("lock").len(),
            4,
            "two cuts, two renditions"
        );
        s.finish();
        let got = sink.0.lock().expect("lock");
        let spans: Vec<(usize, u64, u64)> = got
            .iter()
            .map(|(f, _)| {
                (
                    f.rendition,
                    f.start.as_millis() as u64,
                    f.end.as_millis() as u64,
                )
            })
            .collect();
        assert_eq!(spans, CUTS);
        for (f, info) in got.iter() {
            assert_eq!(f.bytes.len() % PACKET, 0);
            assert_eq!(
                &f.bytes[..4],
                &[0x47, 0x40, 0x00, 0x10 | (f.bytes[3] & 0x0f)]
            );
            let info = info.as_ref().expect("info");
            assert_eq!((info.width, info.height), (854, 480));
            assert_eq!(info.codecs, "avc1.64001f");
            assert_eq!(info.frame_rate, Some(30.0));
        }
    }

    #[test]
    fn low_latency_rooms_get_cmaf_parts_cut_where_ts_segments_are() {
        let sink = Arc::new(Collect::default());
        let hints = SourceHints::default();
        let part = Some(Duration::from_millis(500));
        let mut s = SourceSegmenter::new(
            vec![0, 2],
            Duration::from_secs(2),
            hints,
            sink.clone(),
            part,
        );
        feed(&mut s);
        s.finish();
        assert!(sink.0.lock().expect("lock").is_empty(), "no MPEG-TS");
        let got = sink.1.lock().expect("lock");
        let spans: Vec<(usize, u64, u64)> = got
            .iter()
            .filter_map(|(r, o)| match o {
                PartOutput::Segment { start, end, .. } => {
                    Some((*r, start.as_millis() as u64, end.as_millis() as u64))
                }
                _ => None,
            })
            .collect();
        assert_eq!(spans, CUTS);
        let parts: Vec<Duration> = got
            .iter()
            .filter_map(|(r, o)| match o {
                PartOutput::Part { duration, .. } if *r == 0 => Some(*duration),
                _ => None,
            })
            .collect();
        // 10 fps: five frames make a part of 500 ms, the target.
        assert_eq!(parts.len(), 11, "{parts:?}");
        assert!(
            parts.iter().all(|d| *d == Duration::from_millis(500)),
            "{parts:?}"
        );
        assert!(matches!(got[0], (0, PartOutput::Init { id: 1, .. })));
    }

    /// A publisher's clock gone wrong, through the ingest's timeline into both muxers: the
    /// 32-bit wrap, a jump of a million seconds, one back to zero and one 30 s back. Each jump
    /// carries on one frame later, so both the MPEG-TS and the CMAF segments stay two seconds
    /// long, as the honest 10 fps stream with a keyframe a second would make them.
    #[test]
    fn hostile_timestamps_rebased_make_segments_of_the_honest_length() {
        use crate::mux::boundary::keyframe_gap_limit;
        use crate::mux::timeline::Timeline;
        let segment = Duration::from_secs(2);
        for part_target in [None, Some(Duration::from_millis(500))] {
            let sink = Arc::new(Collect::default());
            let mut s = SourceSegmenter::new(
                vec![0],
                segment,
                SourceHints::default(),
                sink.clone(),
                part_target,
            );
            let mut timeline = Timeline::new(keyframe_gap_limit(Duration::from_secs(1), segment));
            let mut push = |t: Tag| {
                let timestamp_ms = timeline.rebase(t.kind, t.timestamp_ms).timestamp_ms;
                s.push(&Tag { timestamp_ms, ..t }).expect("tag");
            };
            // Wraps past u32::MAX 1.5 s in.
            let mut raw = u32::MAX - 1_500;
            push(Tag {
                timestamp_ms: raw,
                ..avc_header()
            });
            push(tag(TagKind::Audio, raw, vec![0xaf, 0, 0x12, 0x10]));
            for i in 0..100u32 {
                raw = match i {
                    0 => raw,
                    25 => raw.wrapping_add(1_000_000_000),
                    50 => 0,
                    75 => raw.wrapping_sub(30_000),
                    _ => raw.wrapping_add(100),
                };
                push(frame(raw, i % 10 == 0));
                push(audio(raw.wrapping_add(20)));
            }
            s.finish();
            let durations: Vec<Duration> = match part_target {
                None => sink
                    .0
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|(f, _)| f.end - f.start)
                    .collect(),
                Some(_) => sink
                    .1
                    .lock()
                    .expect("lock")
                    .iter()
                    .filter_map(|(_, o)| match o {
                        PartOutput::Segment { start, end, .. } => Some(*end - *start),
                        _ => None,
                    })
                    .collect(),
            };
            assert_eq!(durations, [segment; 5], "{part_target:?}");
        }
    }

    #[test]
    fn malformed_configuration_is_an_error_not_a_hang() {
        let sink = Arc::new(Collect::default());
        let mut s = SourceSegmenter::new(
            vec![0],
            Duration::from_secs(2),
            SourceHints::default(),
            sink,
            None,
        );
        let err = s
            .push(&tag(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1, 0x64]))
            .expect_err("short avcC");
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}
