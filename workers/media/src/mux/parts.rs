//! LL-HLS partial segments of one rendition: coded samples in, CMAF init segments, parts and
//! segments out ([`PartOutput`]). Sans-I/O and shared by both producers: the passthrough source
//! (FLV tags, [`crate::mux::passthrough`]) and each encoded rung (GStreamer buffers,
//! [`crate::transcode::pipeline`]).
//!
//! Segments open on the keyframes the producer marks (the shared [`crate::mux::boundary`]
//! rule), so every rendition has the same segments. Inside a segment, a part closes before the
//! video frame that would carry it past the part target: every rendition gets the same frame
//! times from the source, so parts line up across renditions too, and no part is longer than
//! the target (the playlist's PART-TARGET, RFC 8216bis 4.4.4.9). A segment is the concatenation
//! of its parts (one `moof`+`mdat` each), which is a valid CMAF segment.
//!
//! Times: video in 90 kHz ticks (FLV ms x 90, GStreamer ns x 9 / 100 000), audio converted to
//! its sample rate. Each video sample's duration is known when the next one arrives, so one
//! frame is held back; an AAC frame's duration is always 1024 samples.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::mux::cmaf::{
    AAC_FRAME_SAMPLES, AUDIO_TRACK, Sample, TrackRun, VIDEO_TIMESCALE, VIDEO_TRACK,
    aac_sample_rate, fragment, init_segment,
};
use crate::mux::codec::{AacConfig, AvcConfig};

/// A frame's duration when neither the stream nor the SPS tells it: 30 fps.
const DEFAULT_FRAME_TICKS: u64 = 3000;

/// What the segmenter hands on, in order: an `Init` before the first part that uses it, the
/// parts of a segment, then the segment.
#[derive(Clone, Debug, PartialEq)]
pub enum PartOutput {
    /// A new init segment; the segments from the next one on use it.
    Init { id: u32, bytes: Bytes },
    /// A closed part of the open segment.
    Part {
        bytes: Bytes,
        duration: Duration,
        /// Starts with a keyframe (`INDEPENDENT=YES`).
        independent: bool,
    },
    /// The open segment closed: its parts, concatenated. Times are relative to the first
    /// keyframe of the rendition.
    Segment {
        bytes: Bytes,
        start: Duration,
        end: Duration,
        init: u32,
    },
}

/// 90 kHz ticks as a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(100_000) / 9)
}

/// GStreamer nanoseconds as 90 kHz ticks.
pub fn ns_to_ticks(ns: u64) -> u64 {
    ns.saturating_mul(9) / 100_000
}

struct OpenSegment {
    start_pts: u64,
    parts: Vec<Bytes>,
    init: u32,
}

pub struct PartSegmenter {
    part_target: u64,
    avc: Option<AvcConfig>,
    aac: Option<AacConfig>,
    /// Id of the last init segment handed on, and whether the configuration changed since.
    init_id: u32,
    init_current: bool,
    last_init: Option<Bytes>,
    /// `mfhd` sequence number of the next fragment.
    sequence: u32,
    first_pts: Option<u64>,
    segment: Option<OpenSegment>,
    part_start: u64,
    part_independent: bool,
    video: Vec<Sample>,
    /// The last video sample, waiting for the next one to know its duration.
    pending: Option<Sample>,
    last_pts: u64,
    frame: u64,
    /// Audio samples not yet in a part, with their time in 90 kHz ticks.
    audio: VecDeque<(u64, Sample)>,
    audio_next: Option<u64>,
    out: Vec<PartOutput>,
}

impl PartSegmenter {
    pub fn new(part_target: Duration) -> Self {
        PartSegmenter {
            part_target: (part_target.as_nanos() as u64).saturating_mul(9) / 100_000,
            avc: None,
            aac: None,
            init_id: 0,
            init_current: false,
            last_init: None,
            sequence: 1,
            first_pts: None,
            segment: None,
            part_start: 0,
            part_independent: false,
            video: Vec::new(),
            pending: None,
            last_pts: 0,
            frame: 0,
            audio: VecDeque::new(),
            audio_next: None,
            out: Vec::new(),
        }
    }

    /// The video decoder configuration; a different one takes effect at the next segment.
    pub fn set_avc(&mut self, avc: AvcConfig) {
        if self.avc.as_ref() != Some(&avc) {
            self.avc = Some(avc);
            self.init_current = false;
        }
    }

    pub fn set_aac(&mut self, aac: AacConfig) {
        if self.aac != Some(aac) {
            self.aac = Some(aac);
            self.init_current = false;
        }
    }

    /// What closed since the last call.
    pub fn drain(&mut self) -> Vec<PartOutput> {
        std::mem::take(&mut self.out)
    }

    /// One video access unit (AVCC), times in 90 kHz ticks. `opens_segment`: this keyframe
    /// starts the next segment.
    pub fn push_video(
        &mut self,
        dts: u64,
        cts: i32,
        keyframe: bool,
        opens_segment: bool,
        data: Bytes,
    ) {
        if self.avc.is_none() {
            return; // nothing could decode it
        }
        // Decode times must advance (an MP4 sample lasts at least a tick) and media time is the
        // producer's: a frame that does not come after the last one is put one frame after it,
        // so parts still close on time whatever the timestamps (the ingest cuts a publisher
        // whose clock stalls; this keeps the muxer's own memory bounded until then).
        let dts = match &self.pending {
            Some(prev) if dts <= prev.dts => prev.dts.saturating_add(self.frame_ticks()),
            _ => dts,
        };
        let pts = dts.saturating_add_signed(i64::from(cts));
        if self.segment.is_none() {
            if !keyframe {
                return; // a segment starts with a keyframe
            }
            self.open_segment(pts, dts);
        } else {
            if let Some(mut prev) = self.pending.take() {
                let d = dts.saturating_sub(prev.dts).max(1);
                prev.duration = u32::try_from(d).unwrap_or(u32::MAX);
                self.frame = d;
                self.video.push(prev);
            }
            if keyframe && opens_segment {
                self.close_part(dts);
                self.close_segment(pts);
                self.open_segment(pts, dts);
            } else if dts + self.frame > self.part_start + self.part_target {
                self.close_part(dts);
                self.part_start = dts;
                self.part_independent = keyframe;
            }
        }
        self.last_pts = self.last_pts.max(pts);
        self.pending = Some(Sample {
            dts,
            duration: 0,
            cts,
            keyframe,
            data,
        });
    }

    /// The last frame's duration; before there is one, what the SPS says, else 30 fps.
    fn frame_ticks(&self) -> u64 {
        if self.frame > 0 {
            return self.frame;
        }
        self.avc
            .as_ref()
            .and_then(|avc| avc.frame_rate)
            .filter(|fps| (1.0..=1000.0).contains(fps))
            .map_or(DEFAULT_FRAME_TICKS, |fps| {
                (f64::from(VIDEO_TIMESCALE) / fps).round() as u64
            })
    }

    /// One raw AAC frame at `dts` (90 kHz ticks).
    pub fn push_audio(&mut self, dts: u64, data: Bytes) {
        let Some(aac) = self.aac else {
            return;
        };
        if self.segment.is_none() {
            return; // no segment to go to yet
        }
        let rate = u64::from(aac_sample_rate(&aac));
        let at = dts.saturating_mul(rate) / u64::from(VIDEO_TIMESCALE);
        // Publisher timestamps are whole ms: follow the sample count while they agree within
        // half a frame, so rounding does not leave gaps between frames.
        let half = u64::from(AAC_FRAME_SAMPLES / 2);
        let t = match self.audio_next {
            Some(next) if at.abs_diff(next) <= half => next,
            _ => at,
        };
        self.audio_next = Some(t + u64::from(AAC_FRAME_SAMPLES));
        self.audio.push_back((
            dts,
            Sample {
                dts: t,
                duration: AAC_FRAME_SAMPLES,
                cts: 0,
                keyframe: true,
                data,
            },
        ));
    }

    /// End of the stream: the held frame, the open part and the open segment close.
    pub fn finish(&mut self) {
        let Some(mut last) = self.pending.take() else {
            return;
        };
        let frame = self.frame.max(1);
        last.duration = u32::try_from(frame).unwrap_or(u32::MAX);
        self.video.push(last);
        self.close_part(u64::MAX);
        self.close_segment(self.last_pts + frame);
    }

    fn open_segment(&mut self, pts: u64, dts: u64) {
        self.first_pts.get_or_insert(pts);
        self.segment = Some(OpenSegment {
            start_pts: pts,
            parts: Vec::new(),
            init: self.init_id,
        });
        self.part_start = dts;
        self.part_independent = true;
    }

    /// The init segment of the segment whose first part closes now. Made this late, not when
    /// the segment opens, so an audio header that arrives just after the first keyframe (as
    /// ffmpeg sends them) is in the very first init.
    fn current_init(&mut self) -> u32 {
        if !self.init_current
            && let Some(avc) = &self.avc
        {
            self.init_current = true;
            let bytes = init_segment(avc, self.aac.as_ref());
            // Publishers resend their headers (ffmpeg with new extradata, OBS on reconnect):
            // the same bytes are the same init.
            if self.last_init.as_ref() != Some(&bytes) {
                self.init_id += 1;
                self.last_init = Some(bytes.clone());
                self.out.push(PartOutput::Init {
                    id: self.init_id,
                    bytes,
                });
            }
        }
        self.init_id
    }

    /// Close the open part before the video frame at `next_dts` (`u64::MAX`: at the end).
    fn close_part(&mut self, next_dts: u64) {
        let first_part = match &self.segment {
            None => return,
            Some(segment) => segment.parts.is_empty(),
        };
        let mut audio = Vec::new();
        while let Some((t, _)) = self.audio.front() {
            if *t >= next_dts {
                break;
            }
            if let Some((_, s)) = self.audio.pop_front() {
                audio.push(s);
            }
        }
        if self.video.is_empty() && audio.is_empty() {
            return;
        }
        let end = match self.video.last() {
            Some(v) if next_dts == u64::MAX => v.dts + u64::from(v.duration),
            _ => next_dts,
        };
        let duration = ticks_to_duration(end.saturating_sub(self.part_start));
        if first_part {
            let init = self.current_init();
            if let Some(segment) = &mut self.segment {
                segment.init = init;
            }
        }
        let video = std::mem::take(&mut self.video);
        let bytes = fragment(
            self.sequence,
            &[
                TrackRun {
                    track_id: VIDEO_TRACK,
                    samples: &video,
                },
                TrackRun {
                    track_id: AUDIO_TRACK,
                    samples: &audio,
                },
            ],
        );
        self.sequence = self.sequence.wrapping_add(1);
        if let Some(segment) = &mut self.segment {
            segment.parts.push(bytes.clone());
        }
        self.out.push(PartOutput::Part {
            bytes,
            duration,
            independent: self.part_independent,
        });
    }

    fn close_segment(&mut self, end_pts: u64) {
        let (Some(segment), Some(first)) = (self.segment.take(), self.first_pts) else {
            return;
        };
        if segment.parts.is_empty() {
            return;
        }
        let mut bytes = BytesMut::with_capacity(segment.parts.iter().map(Bytes::len).sum());
        for p in &segment.parts {
            bytes.extend_from_slice(p);
        }
        self.out.push(PartOutput::Segment {
            bytes: bytes.freeze(),
            start: ticks_to_duration(segment.start_pts.saturating_sub(first)),
            end: ticks_to_duration(end_pts.saturating_sub(first)),
            init: segment.init,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::cmaf::tests::avc;

    /// 100 bytes of AVCC: one IDR or non-IDR slice NAL unit (demuxers look at the NAL type).
    fn access_unit(key: bool) -> Bytes {
        let mut au = vec![0, 0, 0, 96, if key { 0x65 } else { 0x41 }];
        au.resize(100, 0x5a);
        Bytes::from(au)
    }

    fn run(frames: u64, audio: bool) -> Vec<PartOutput> {
        let mut s = PartSegmenter::new(Duration::from_millis(500));
        s.set_avc(avc());
        if audio {
            s.set_aac(AacConfig::parse(&[0x11, 0x90]).expect("asc"));
        }
        // 30 fps in 90 kHz ticks, a keyframe every second, segments of two seconds.
        for i in 0..frames {
            let dts = 3000 * i;
            let key = i % 30 == 0;
            s.push_video(dts, 0, key, key && i % 60 == 0, access_unit(key));
            if audio {
                // 48 kHz AAC frames are 1920 ticks; whatever falls before the next frame.
                let mut t = (dts / 1920) * 1920;
                while t < dts + 3000 {
                    if t >= dts {
                        s.push_audio(t, Bytes::from_static(b"aac"));
                    }
                    t += 1920;
                }
            }
        }
        s.finish();
        s.drain()
    }

    #[test]
    fn parts_never_exceed_the_target_and_segments_open_on_marked_keyframes() {
        let out = run(150, true);
        assert!(
            matches!(out[0], PartOutput::Init { id: 1, .. }),
            "{:?}",
            out[0]
        );
        let segments: Vec<(Duration, Duration)> = out
            .iter()
            .filter_map(|o| match o {
                PartOutput::Segment { start, end, .. } => Some((*start, *end)),
                _ => None,
            })
            .collect();
        let s = Duration::from_secs;
        assert_eq!(segments, vec![(s(0), s(2)), (s(2), s(4)), (s(4), s(5))]);
        let mut parts_of_segment = Vec::new();
        let mut independent = Vec::new();
        for o in &out {
            match o {
                PartOutput::Part {
                    duration,
                    independent: ind,
                    ..
                } => {
                    assert!(*duration <= Duration::from_millis(500), "{duration:?}");
                    assert!(*duration >= Duration::from_millis(400), "{duration:?}");
                    parts_of_segment.push(*duration);
                    independent.push(*ind);
                }
                PartOutput::Segment { start, end, .. } => {
                    let sum: Duration = parts_of_segment.drain(..).sum();
                    assert_eq!(sum, *end - *start, "parts cover the segment");
                }
                PartOutput::Init { .. } => {}
            }
        }
        // Half-second parts: the keyframes at whole seconds each begin one.
        assert_eq!(independent, [true, false].repeat(5));
    }

    #[test]
    fn a_segment_is_its_parts_and_every_audio_frame_lands_once() {
        let out = run(60, true);
        let mut parts = Vec::new();
        for o in &out {
            match o {
                PartOutput::Part { bytes, .. } => parts.extend_from_slice(bytes),
                PartOutput::Segment { bytes, .. } => {
                    assert_eq!(&bytes[..], &parts[..]);
                    parts.clear();
                }
                PartOutput::Init { .. } => {}
            }
        }
        let total = out
            .iter()
            .filter_map(|o| match o {
                PartOutput::Segment { bytes, .. } => Some(bytes.len()),
                _ => None,
            })
            .sum::<usize>();
        // 60 video frames of 100 bytes; 2 s of 48 kHz audio is 94 frames of 3 bytes (the
        // first at 0, the last before 2 s), plus the boxes.
        let boxes = total - 60 * 100 - 94 * 3;
        assert!(boxes > 0 && boxes < 5 * 1024, "{boxes}");
    }

    /// Review finding: media time is the publisher's. Keyframes whose timestamps never advance
    /// (or run backwards) closed no part, and the keyframe-gap watch is content (every frame is
    /// a keyframe): the open part grew at the publisher's bitrate until the pod ran out of
    /// memory. Such frames now go one frame after the last, so parts close.
    #[test]
    fn keyframes_with_frozen_timestamps_still_close_parts() {
        let mut s = PartSegmenter::new(Duration::from_millis(500));
        s.set_avc(avc());
        let mut out = Vec::new();
        // 10 000 keyframes of 100 bytes, all at media time 0: 5.5 minutes at 30 fps.
        for _ in 0..10_000 {
            s.push_video(0, 0, true, false, access_unit(true));
            out.extend(s.drain());
        }
        assert!(
            out.iter().any(|o| matches!(o, PartOutput::Part { .. })),
            "no part closed: {} frames held in one open part",
            s.video.len()
        );
    }

    #[test]
    fn backwards_decode_times_still_make_parts_of_positive_length() {
        let mut s = PartSegmenter::new(Duration::from_millis(500));
        s.set_avc(avc());
        // 30 fps for a second, then the clock runs backwards, 40 ms a frame, for two seconds.
        for i in 0..30u64 {
            s.push_video(3000 * i, 0, i == 0, false, access_unit(i == 0));
        }
        for i in 0..60u64 {
            s.push_video(
                87_000 - 3600 * i.min(24),
                0,
                false,
                false,
                access_unit(false),
            );
        }
        s.finish();
        let parts: Vec<Duration> = s
            .drain()
            .iter()
            .filter_map(|o| match o {
                PartOutput::Part { duration, .. } => Some(*duration),
                _ => None,
            })
            .collect();
        // 90 frames, one frame (33 ms) apart whatever their stamps: three seconds of parts.
        assert_eq!(parts.len(), 6, "{parts:?}");
        assert!(
            parts
                .iter()
                .all(|d| (Duration::from_millis(400)..=Duration::from_millis(500)).contains(d)),
            "{parts:?}"
        );
        assert_eq!(parts.iter().sum::<Duration>(), Duration::from_secs(3));
    }

    #[test]
    fn frames_before_the_first_keyframe_and_without_a_configuration_are_dropped() {
        let mut s = PartSegmenter::new(Duration::from_millis(500));
        s.push_video(0, 0, true, false, Bytes::from_static(b"no config"));
        assert!(s.drain().is_empty());
        s.set_avc(avc());
        s.push_video(3000, 0, false, false, Bytes::from_static(b"delta"));
        s.push_audio(3000, Bytes::from_static(b"no aac config"));
        s.finish();
        assert!(s.drain().is_empty());
    }

    #[test]
    fn a_new_configuration_makes_a_new_init_at_the_next_segment() {
        let mut s = PartSegmenter::new(Duration::from_millis(500));
        s.set_avc(avc());
        for i in 0..180u64 {
            if i == 5 {
                // Before the first part closed: still in the first init.
                s.set_aac(AacConfig::parse(&[0x11, 0x90]).expect("asc"));
            }
            if i == 20 {
                s.set_avc(avc()); // the same header again (OBS resends it): no new init
                s.set_aac(AacConfig::parse(&[0x12, 0x10]).expect("asc"));
            }
            if i == 70 {
                // Another configuration that writes the same init bytes: no new init either.
                s.set_avc(AvcConfig {
                    frame_rate: Some(25.0),
                    ..avc()
                });
            }
            let key = i % 60 == 0;
            s.push_video(3000 * i, 0, key, key, Bytes::from_static(b"frame"));
        }
        s.finish();
        let inits: Vec<u32> = s
            .drain()
            .iter()
            .filter_map(|o| match o {
                PartOutput::Init { id, .. } => Some(*id),
                PartOutput::Segment { init, .. } => Some(100 + *init),
                _ => None,
            })
            .collect();
        assert_eq!(inits, vec![1, 101, 2, 102, 102]);
    }

    /// ffprobe (a real MP4 demuxer) reads the init segment and a segment back: both tracks,
    /// every sample, the right times.
    #[test]
    fn ffprobe_reads_every_sample_back() {
        let ok = std::process::Command::new("ffprobe")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            roomcast_runtime::skip::missing("ffprobe", "it reads the CMAF this muxer writes");
            return;
        }
        let out = run(60, true);
        let mut file = Vec::new();
        for o in &out {
            match o {
                PartOutput::Init { bytes, .. } | PartOutput::Segment { bytes, .. } => {
                    file.extend_from_slice(bytes)
                }
                PartOutput::Part { .. } => {}
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rendition.mp4");
        std::fs::write(&path, &file).expect("write");
        let probe = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=stream_index,pts_time,flags",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe");
        assert!(
            probe.status.success(),
            "{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let text = String::from_utf8_lossy(&probe.stdout);
        let packets: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        let video: Vec<_> = packets.iter().filter(|p| p[0] == "0").collect();
        let audio: Vec<_> = packets.iter().filter(|p| p[0] == "1").collect();
        assert_eq!(video.len(), 60, "{text}");
        assert_eq!(audio.len(), 94, "{text}");
        assert_eq!(video[0][1], "0.000000");
        assert_eq!(video[59][1], "1.966667");
        assert!(
            video[0][2].starts_with('K') && video[30][2].starts_with('K'),
            "{text}"
        );
        assert!(!video[1][2].starts_with('K'), "{text}");
        assert_eq!(audio[1][1], "0.021333", "1024 samples at 48 kHz");
    }
}
