//! HLS playlists as plain data with pure renderers (the shape of gst-plugins-rs
//! `hlssink3/src/playlist.rs`, rendered through `m3u8-rs`).
//!
//! [`MediaPlaylist`] is a sliding DVR window: [`MediaPlaylist::push`] appends a closed segment and
//! drops the oldest ones while the rest still cover the window. It knows the segment format: an
//! fMP4/CMAF playlist adds `EXT-X-MAP` where the init segment changes, and a low-latency one
//! (a part target set) the LL-HLS tags of [`super::low_latency`].

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::names::{MediaFile, SessionToken};

/// The master playlist is rendered by the code the recorder renders VOD masters with, so live
/// and replay carry the same attributes.
pub use roomcast_recorder::playlist::{StreamAttributes, Variant, render_master};

/// Container of the media segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentFormat {
    /// MPEG-TS segments (`<token>-<seq>.ts`), what is served today.
    MpegTs,
    /// fMP4/CMAF segments (`<token>-<seq>.m4s`) with init sections (`EXT-X-MAP`,
    /// `<token>-init-<id>.mp4`).
    Fmp4,
}

impl SegmentFormat {
    pub fn content_type(&self) -> &'static str {
        match self {
            SegmentFormat::MpegTs => "video/mp2t",
            SegmentFormat::Fmp4 => "video/iso.segment",
        }
    }
}

/// One closed media segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Media sequence number; the same number in every rendition covers the same media time.
    pub seq: u64,
    pub duration: Duration,
    /// First segment after a publisher reconnect.
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: DateTime<Utc>,
    /// Size in bytes (for bandwidth figures).
    pub size: usize,
    /// Init segment id of an fMP4 segment (0 for MPEG-TS).
    pub init: u32,
    /// LL-HLS parts, in order (empty for MPEG-TS).
    pub parts: Vec<Part>,
}

/// One LL-HLS partial segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Part {
    pub duration: Duration,
    /// Starts with a keyframe.
    pub independent: bool,
}

/// A live media playlist with a sliding window.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaPlaylist {
    /// The session's token, in every file name the playlist lists ([`super::names`]).
    pub token: SessionToken,
    pub format: SegmentFormat,
    /// Seconds; never lowered during a session (RFC 8216 4.3.3.1).
    pub target_duration: u64,
    pub window: Duration,
    pub discontinuity_sequence: u64,
    pub segments: VecDeque<Segment>,
    pub ended: bool,
    /// Low latency: the part target, raised to the longest part seen (RFC 8216bis 4.4.3.7: no
    /// part may be longer), and the parts of the open segment.
    pub part_target: Option<Duration>,
    pub open_parts: Vec<Part>,
    /// Init segment id of the open segment's parts, and whether that segment follows a
    /// publisher reconnect (its parts then come after an `EXT-X-DISCONTINUITY`).
    pub open_init: u32,
    pub open_discontinuity: bool,
}

impl MediaPlaylist {
    pub fn new(
        token: SessionToken,
        format: SegmentFormat,
        segment_seconds: u32,
        window: Duration,
    ) -> Self {
        MediaPlaylist {
            token,
            format,
            target_duration: u64::from(segment_seconds.max(1)),
            window,
            discontinuity_sequence: 0,
            segments: VecDeque::new(),
            ended: false,
            part_target: None,
            open_parts: Vec::new(),
            open_init: 0,
            open_discontinuity: false,
        }
    }

    /// Sequence number the open (or next) segment gets.
    pub fn open_seq(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.seq + 1)
    }

    /// A part of the open segment closed.
    pub fn push_part(&mut self, part: Part) {
        if let Some(target) = &mut self.part_target {
            *target = (*target).max(part.duration);
        }
        self.open_parts.push(part);
    }

    /// Sequence number of the first segment in the window.
    pub fn media_sequence(&self) -> u64 {
        self.segments.front().map(|s| s.seq).unwrap_or(0)
    }

    /// Total media time in the window.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// Append a closed segment; returns the segments that left the window (oldest first).
    pub fn push(&mut self, segment: Segment) -> Vec<Segment> {
        // EXTINF rounded to the nearest integer must not exceed the target duration.
        let rounded = (segment.duration.as_secs_f64()).round() as u64;
        self.target_duration = self.target_duration.max(rounded);
        self.segments.push_back(segment);
        self.open_parts.clear();
        self.open_discontinuity = false;
        let mut removed = Vec::new();
        while let Some(front) = self.segments.front() {
            if self.duration().saturating_sub(front.duration) < self.window {
                break;
            }
            if let Some(front) = self.segments.pop_front() {
                if front.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                removed.push(front);
            }
        }
        removed
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.segments.iter().any(|s| s.seq == seq)
    }

    /// Peak and average bits per second over the window.
    pub fn bandwidth(&self) -> Option<(u64, u64)> {
        let mut peak = 0u64;
        let (mut bytes, mut secs) = (0u64, 0f64);
        for s in &self.segments {
            let d = s.duration.as_secs_f64();
            if d < 0.1 {
                continue;
            }
            peak = peak.max((s.size as f64 * 8.0 / d) as u64);
            bytes += s.size as u64;
            secs += d;
        }
        (secs > 0.0).then(|| (peak, (bytes as f64 * 8.0 / secs) as u64))
    }

    /// Render as `index.m3u8`. Segment URIs are relative: `<token>-<seq>.<ext>`.
    pub fn render(&self) -> String {
        self.render_with(None, |_| Vec::new())
    }

    /// Render, with `tags(segment)` written before each segment's `EXTINF` (its LL-HLS parts).
    /// With `skipped`, a playlist delta update (rfc8216bis 6.2.5.1): its segments are left out
    /// and its `EXT-X-SKIP` line stands in their place, right after the header.
    pub(super) fn render_with(
        &self,
        skipped: Option<Skipped<'_>>,
        tags: impl Fn(&Segment) -> Vec<m3u8_rs::ExtTag>,
    ) -> String {
        let fmp4 = self.format == SegmentFormat::Fmp4;
        let first = skipped.as_ref().map_or(0, |s| s.segments);
        let segments = self
            .segments
            .iter()
            .enumerate()
            .skip(first)
            .map(|(i, s)| {
                // The first listed segment always names its init: in a delta update the
                // EXT-X-MAP that applied to it may have gone with the skipped segments.
                let new_init = i == first || self.segments[i - 1].init != s.init;
                m3u8_rs::MediaSegment {
                    uri: self.token.name(MediaFile::Segment {
                        seq: s.seq,
                        cmaf: fmp4,
                    }),
                    duration: (s.duration.as_millis() as f32) / 1000.0,
                    discontinuity: s.discontinuity,
                    map: (fmp4 && new_init).then(|| m3u8_rs::Map {
                        uri: self.token.name(MediaFile::Init { id: s.init }),
                        ..Default::default()
                    }),
                    program_date_time: Some(s.program_date_time.fixed_offset()),
                    unknown_tags: tags(s),
                    ..Default::default()
                }
            })
            .collect();
        // EXT-X-SKIP needs protocol version 9 (rfc8216bis section 8).
        let version = match (&skipped, fmp4) {
            (Some(_), _) => 9,
            (None, true) => 7,
            (None, false) => 3,
        };
        let header = m3u8_rs::MediaPlaylist {
            version: Some(version),
            target_duration: self.target_duration,
            media_sequence: self.media_sequence(),
            discontinuity_sequence: self.discontinuity_sequence,
            independent_segments: true,
            ..Default::default()
        };
        let playlist = m3u8_rs::MediaPlaylist {
            segments,
            end_list: self.ended,
            ..header.clone()
        };
        let mut text = write_string(|w| playlist.write_to(w));
        if let Some(skipped) = skipped {
            // m3u8-rs has no EXT-X-SKIP; the same header written without segments ends where
            // the first listed segment's tags begin, which is where the skip stands.
            let at = write_string(|w| header.write_to(w)).len();
            text.insert_str(at, &format!("{}\n", skipped.tag));
        }
        text
    }
}

/// The segments a playlist delta update leaves out (the oldest `segments`), and its
/// `EXT-X-SKIP` line.
pub(super) struct Skipped<'a> {
    pub segments: usize,
    pub tag: &'a str,
}

fn write_string(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = f(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::names::test_token;
    use chrono::TimeZone;

    fn seg(seq: u64, ms: u64, discontinuity: bool) -> Segment {
        let base = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("date");
        Segment {
            seq,
            duration: Duration::from_millis(ms),
            discontinuity,
            program_date_time: base + chrono::Duration::seconds(seq as i64 * 2),
            size: 250_000,
            init: 0,
            parts: Vec::new(),
        }
    }

    #[test]
    fn window_keeps_at_least_dvr_window_seconds() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(10),
        );
        for i in 0..20 {
            p.push(seg(i, 2000, false));
        }
        assert_eq!(p.duration(), Duration::from_secs(10));
        assert_eq!(p.media_sequence(), 15);
        assert!(p.contains(19) && !p.contains(14));
    }

    #[test]
    fn removed_segments_are_returned_oldest_first() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(4),
        );
        assert!(p.push(seg(0, 2000, false)).is_empty());
        assert!(p.push(seg(1, 2000, false)).is_empty());
        let removed = p.push(seg(2, 2000, false));
        assert_eq!(removed.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn dropping_a_discontinuity_bumps_the_discontinuity_sequence() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(4),
        );
        p.push(seg(0, 2000, false));
        p.push(seg(1, 2000, true));
        p.push(seg(2, 2000, false));
        assert_eq!(p.discontinuity_sequence, 0);
        p.push(seg(3, 2000, false));
        assert_eq!(p.discontinuity_sequence, 1);
        assert!(p.render().contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"));
    }

    #[test]
    fn render_has_the_live_tags() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(60),
        );
        p.push(seg(7, 2000, false));
        p.push(seg(8, 2500, true));
        let text = p.render();
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
        assert!(
            text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:19.000Z\n#EXTINF:2,\n0123456789abcdef-7.ts\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(
            text.contains("#EXTINF:2.5,\n0123456789abcdef-8.ts\n"),
            "{text}"
        );
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        p.ended = true;
        assert!(p.render().ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn rendered_playlist_parses_back() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(60),
        );
        for i in 0..3 {
            p.push(seg(i, 2002, i == 2));
        }
        p.ended = true;
        let parsed = m3u8_rs::parse_media_playlist_res(p.render().as_bytes()).expect("parses");
        assert_eq!(parsed.segments.len(), 3);
        assert!(parsed.end_list);
        assert!(parsed.segments[2].discontinuity);
    }

    #[test]
    fn fmp4_playlists_carry_the_init_section() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::Fmp4,
            2,
            Duration::from_secs(60),
        );
        for (seq, init) in [(0, 1), (1, 1), (2, 2)] {
            p.push(Segment {
                init,
                ..seg(seq, 2000, seq == 2)
            });
        }
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
        assert!(
            text.contains(
                "#EXT-X-MAP:URI=\"0123456789abcdef-init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "1.m4s\n#EXT-X-MAP:URI=\"0123456789abcdef-init-2.mp4\"\n#EXT-X-DISCONTINUITY"
            ),
            "{text}"
        );
        assert!(text.contains("#EXT-X-VERSION:7"), "{text}");
        assert!(text.contains("0.m4s"), "{text}");
    }

    #[test]
    fn bandwidth_is_peak_and_average() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::MpegTs,
            2,
            Duration::from_secs(60),
        );
        let mut a = seg(0, 2000, false);
        a.size = 250_000;
        let mut b = seg(1, 2000, false);
        b.size = 500_000;
        p.push(a);
        p.push(b);
        assert_eq!(p.bandwidth(), Some((2_000_000, 1_500_000)));
    }
}
