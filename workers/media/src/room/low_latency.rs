//! Low-Latency HLS on top of [`MediaPlaylist`] (draft-pantos-hls-rfc8216bis): the part tags of
//! the last segments and of the open one, the preload hint of the next part, server control
//! (blocking reload, part hold-back, delta updates), rendition reports, and the rules the origin
//! applies to a blocking request (`_HLS_msn` / `_HLS_part`) and to a delta update request
//! (`_HLS_skip`). Pure: playlist in, text or a verdict out.

use std::time::Duration;

use super::names::{MediaFile, SessionToken};
use super::playlist::{MediaPlaylist, Part, Segment, Skipped};

/// Parts are listed for the segments within this many target durations of the playlist's end
/// (4.4.4.9: older part tags should go; the segments stay for the DVR window).
const PART_TAG_TARGET_DURATIONS: u32 = 3;
/// PART-HOLD-BACK in part targets: the spec's floor is two, three is its recommendation and
/// what hls.js aims at.
pub const PART_HOLD_BACK_PARTS: u32 = 3;
/// The Skip Boundary (`CAN-SKIP-UNTIL`) in target durations: the spec's floor (4.4.3.8). The
/// smallest boundary leaves the most out of a delta update; its cost is that a client may ask
/// for one only while its copy is younger than half the boundary (6.3.7), three target
/// durations, which a low-latency client reloading at every part always is.
pub const SKIP_BOUNDARY_TARGET_DURATIONS: u64 = 6;

/// What a playlist request asks to leave out (`_HLS_skip`, 6.2.5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Skip {
    /// No `_HLS_skip`: the whole playlist.
    #[default]
    Nothing,
    /// `_HLS_skip=YES`: the segments older than the skip boundary.
    Segments,
    /// `_HLS_skip=v2`: those segments and old `EXT-X-DATERANGE` tags. The playlists carry no
    /// date ranges, so this is the `YES` update plus the (empty) list of removed date ranges the
    /// spec requires in answer to `v2` (4.4.5.2).
    SegmentsAndDateRanges,
}

impl Skip {
    /// Every value, in the order of [`Skip::index`]: a rendition caches one rendering of each.
    pub const ALL: [Skip; 3] = [Skip::Nothing, Skip::Segments, Skip::SegmentsAndDateRanges];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// `EXT-X-RENDITION-REPORT` of another rendition of the same session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    /// Relative URI of its media playlist, `../<rendition>/index.m3u8`.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u64,
}

/// What a blocking playlist request asks for, checked against the playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// The playlist already has it: answer now.
    Ready,
    /// Not yet: wait for the next part, up to [`MediaPlaylist::block_timeout`].
    Wait,
    /// Further ahead than a server is asked to wait for (6.2.5.2): 400.
    TooFar,
}

/// Seconds with millisecond precision, rounded up so a rounded duration is never shorter than
/// the part it describes.
fn secs_up(d: Duration) -> String {
    let ms = d.as_micros().div_ceil(1000);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn secs(d: Duration) -> String {
    let ms = (d.as_micros() + 500) / 1000;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn part_tag(token: SessionToken, seq: u64, index: usize, part: &Part) -> m3u8_rs::ExtTag {
    let independent = if part.independent {
        ",INDEPENDENT=YES"
    } else {
        ""
    };
    m3u8_rs::ExtTag {
        tag: "X-PART".into(),
        rest: Some(format!(
            "DURATION={},URI=\"{}\"{independent}",
            secs(part.duration),
            token.name(MediaFile::Part { seq, index })
        )),
    }
}

impl MediaPlaylist {
    /// The advertised part target (`EXT-X-PART-INF`), in whole ms.
    fn rendered_part_target(&self) -> Option<Duration> {
        let t = self.part_target?;
        Some(Duration::from_millis(t.as_micros().div_ceil(1000) as u64))
    }

    /// Last part of the playlist as (media sequence number, part index).
    pub fn last_part(&self) -> Option<(u64, u64)> {
        if let Some(n) = self.open_parts.len().checked_sub(1) {
            return Some((self.open_seq(), n as u64));
        }
        let last = self.segments.back()?;
        Some((last.seq, last.parts.len().checked_sub(1)? as u64))
    }

    /// Answer to `_HLS_msn=msn[&_HLS_part=part]` (6.2.5.2).
    pub fn block(&self, msn: u64, part: Option<u64>) -> Block {
        let (last_msn, last_part) = self.last_part().unwrap_or((0, 0));
        let ready = match part {
            // A whole segment: ready once it closed.
            None => msn < self.open_seq(),
            Some(p) => (msn, p) <= (last_msn, last_part) || msn.saturating_add(1) < self.open_seq(),
        };
        if ready || self.ended {
            return Block::Ready;
        }
        if msn > last_msn.saturating_add(2) {
            return Block::TooFar;
        }
        if let (Some(p), Some(target)) = (part, self.rendered_part_target()) {
            // The Advance Part Limit: three seconds of parts (three parts if they are 1 s+).
            let limit = (3_000 / target.as_millis().max(1) as u64).max(3);
            let per_segment = (self.target_duration * 1000)
                .div_ceil(target.as_millis().max(1) as u64)
                .max(1);
            let ahead = (msn - last_msn.min(msn))
                .saturating_mul(per_segment)
                .saturating_add(p);
            if ahead > last_part.saturating_add(limit) {
                return Block::TooFar;
            }
        }
        Block::Wait
    }

    /// How long a blocking request may wait before the origin gives up with 503: three target
    /// durations (6.2.5.2).
    pub fn block_timeout(&self) -> Duration {
        Duration::from_secs(self.target_duration * 3)
    }

    /// The Skip Boundary this playlist advertises (`CAN-SKIP-UNTIL`), or `None` when it offers no
    /// delta updates: not low latency, ended (6.2.5.1: `_HLS_skip` is then ignored), or a DVR
    /// window too short for a delta update to leave anything out.
    pub fn skip_boundary(&self) -> Option<Duration> {
        if self.part_target.is_none() || self.ended {
            return None;
        }
        let target = Duration::from_secs(self.target_duration);
        let boundary = Duration::from_secs(
            self.target_duration
                .saturating_mul(SKIP_BOUNDARY_TARGET_DURATIONS),
        );
        // A full window holds at least `window` of media and its oldest segment lasts at most a
        // target duration, so a window longer than the boundary plus one target duration always
        // has a segment that ends beyond the boundary.
        (self.window > boundary + target).then_some(boundary)
    }

    /// How many of the oldest segments a delta update leaves out: those that end further than
    /// `boundary` from the end of the last segment (6.2.5.1; the open segment's parts do not
    /// count). A segment that reaches into the boundary stays, so a client always gets at least
    /// `boundary` of media.
    pub fn skipped_segments(&self, boundary: Duration) -> usize {
        let mut to_end = Duration::ZERO;
        for (i, s) in self.segments.iter().enumerate().rev() {
            if to_end > boundary {
                return i + 1;
            }
            to_end += s.duration;
        }
        0
    }

    /// Whether `segment` is recent enough for its parts to be listed.
    fn lists_parts(&self, segment: &Segment) -> bool {
        let horizon =
            Duration::from_secs(self.target_duration * u64::from(PART_TAG_TARGET_DURATIONS));
        let after: Duration = self
            .segments
            .iter()
            .filter(|s| s.seq > segment.seq)
            .map(|s| s.duration)
            .sum::<Duration>()
            + self.open_parts.iter().map(|p| p.duration).sum::<Duration>();
        after < horizon
    }

    /// Render the low-latency playlist; `reports` are the other renditions' last parts. A
    /// `skip` asked of a playlist that offers no delta updates gets the whole playlist, as the
    /// spec requires (6.2.5.1).
    pub fn render_low_latency(&self, reports: &[RenditionReport], skip: Skip) -> String {
        let Some(target) = self.rendered_part_target() else {
            return self.render();
        };
        let boundary = self.skip_boundary();
        let skipped_count = match (skip, boundary) {
            (Skip::Nothing, _) | (_, None) => None,
            (_, Some(b)) => Some(self.skipped_segments(b)),
        };
        let skip_tag = skipped_count.map(|n| {
            let removed_date_ranges = if skip == Skip::SegmentsAndDateRanges {
                ",RECENTLY-REMOVED-DATERANGES=\"\""
            } else {
                ""
            };
            format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={n}{removed_date_ranges}")
        });
        let skipped = skipped_count
            .zip(skip_tag.as_deref())
            .map(|(segments, tag)| Skipped { segments, tag });
        let mut text = self.render_with(skipped, |s| {
            if self.lists_parts(s) {
                s.parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| part_tag(self.token, s.seq, i, p))
                    .collect()
            } else {
                Vec::new()
            }
        });
        let can_skip = boundary
            .map(|b| format!(",CAN-SKIP-UNTIL={}", secs(b)))
            .unwrap_or_default();
        let control = format!(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}{can_skip}\n#EXT-X-PART-INF:PART-TARGET={}\n",
            secs_up(target * PART_HOLD_BACK_PARTS),
            secs_up(target),
        );
        // After the header's TARGETDURATION line, which m3u8-rs always writes.
        if let Some(at) = text.find("#EXT-X-TARGETDURATION:")
            && let Some(nl) = text[at..].find('\n')
        {
            text.insert_str(at + nl + 1, &control);
        }
        if self.ended {
            return text;
        }
        let seq = self.open_seq();
        // Parts of a segment whose init no listed segment uses yet (the first segment of the
        // session, or a new codec configuration) need its map before them.
        let mapped = self
            .segments
            .back()
            .is_some_and(|s| s.init == self.open_init);
        if !self.open_parts.is_empty() && !mapped {
            text.push_str(&format!(
                "#EXT-X-MAP:URI=\"{}\"\n",
                self.token.name(MediaFile::Init { id: self.open_init })
            ));
        }
        if !self.open_parts.is_empty() && self.open_discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        for (i, p) in self.open_parts.iter().enumerate() {
            text.push_str(&format!("{}\n", part_tag(self.token, seq, i, p)));
        }
        text.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"\n",
            self.token.name(MediaFile::Part {
                seq,
                index: self.open_parts.len()
            })
        ));
        for r in reports {
            text.push_str(&format!(
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}\n",
                r.uri, r.last_msn, r.last_part
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use crate::room::names::test_token;
    use chrono::TimeZone;

    use super::*;
    use crate::room::playlist::SegmentFormat;

    fn part(ms: u64, independent: bool) -> Part {
        Part {
            duration: Duration::from_millis(ms),
            independent,
        }
    }

    /// A playlist of `segments` closed two-second segments of four parts and `open` parts.
    fn playlist(segments: u64, open: usize) -> MediaPlaylist {
        let mut p = playlist_with_reconnects(Duration::from_secs(12), segments, &[]);
        for i in 0..open {
            p.push_part(part(480, i == 0));
        }
        p
    }

    /// `segments` closed two-second segments of four parts in a `window`; a publisher
    /// reconnect (new init, discontinuity, three seconds of wall clock lost) before each of
    /// `reconnects`.
    fn playlist_with_reconnects(
        window: Duration,
        segments: u64,
        reconnects: &[u64],
    ) -> MediaPlaylist {
        let mut p = MediaPlaylist::new(test_token(), SegmentFormat::Fmp4, 2, window);
        p.part_target = Some(Duration::from_millis(500));
        p.open_init = 1;
        let base = chrono::Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("date");
        let mut lost = 0;
        for seq in 0..segments {
            let reconnect = reconnects.contains(&seq);
            if reconnect {
                p.open_init += 1;
                lost += 3;
            }
            for i in 0..4 {
                p.push_part(part(500, i == 0));
            }
            p.push(Segment {
                seq,
                duration: Duration::from_secs(2),
                discontinuity: reconnect,
                program_date_time: base + chrono::Duration::seconds(seq as i64 * 2 + lost),
                size: 100_000,
                init: p.open_init,
                parts: p.open_parts.clone(),
            });
        }
        p
    }

    fn report() -> Vec<RenditionReport> {
        vec![RenditionReport {
            uri: "../360p/index.m3u8".into(),
            last_msn: 9,
            last_part: 1,
        }]
    }

    #[test]
    fn low_latency_playlist_snapshot() {
        insta::assert_snapshot!(playlist(10, 2).render_low_latency(&report(), Skip::Nothing));
    }

    #[test]
    fn parts_follow_the_spec_rules() {
        let p = playlist(10, 2);
        let text = p.render_low_latency(&report(), Skip::Nothing);
        let target: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
            .and_then(|v| v.parse().ok())
            .expect("PART-TARGET");
        let hold_back: f64 = text
            .lines()
            .find_map(|l| l.split("PART-HOLD-BACK=").nth(1))
            .and_then(|v| v.parse().ok())
            .expect("PART-HOLD-BACK");
        assert!(hold_back >= 3.0 * target, "{hold_back} < 3 x {target}");
        let durations: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        assert!(!durations.is_empty());
        assert!(durations.iter().all(|d| *d <= target), "{durations:?}");
        // Parts of the last three target durations only: 6 s = the open parts and the last
        // two segments (and a half) -> segments 7, 8 and 9 keep theirs, 6 does not.
        assert!(text.contains("URI=\"0123456789abcdef-7.0.m4s\""), "{text}");
        assert!(!text.contains("URI=\"0123456789abcdef-6.3.m4s\""), "{text}");
        // Every part tag comes before its segment's EXTINF and the hint is the next part.
        let hint = text
            .find("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"0123456789abcdef-10.2.m4s\"")
            .expect("hint");
        assert!(
            text.find("URI=\"0123456789abcdef-10.1.m4s\"")
                .expect("open part")
                < hint
        );
        assert!(
            text.find("URI=\"0123456789abcdef-9.3.m4s\"").expect("part")
                < text.find("\n0123456789abcdef-9.m4s").expect("seg")
        );
        assert!(!text.contains("ENDLIST"));
    }

    #[test]
    fn a_longer_part_raises_the_part_target() {
        let mut p = playlist(1, 0);
        p.push_part(part(533, true));
        assert!(
            p.render_low_latency(&[], Skip::Nothing)
                .contains("PART-TARGET=0.533\n")
        );
        assert!(
            p.render_low_latency(&[], Skip::Nothing)
                .contains("PART-HOLD-BACK=1.599\n")
        );
    }

    #[test]
    fn parts_before_the_first_segment_come_with_their_map() {
        let p = playlist(0, 2);
        let text = p.render_low_latency(&[], Skip::Nothing);
        let map = text
            .find("#EXT-X-MAP:URI=\"0123456789abcdef-init-1.mp4\"\n")
            .expect(&text);
        assert!(
            map < text.find("URI=\"0123456789abcdef-0.0.m4s\"").expect(&text),
            "{text}"
        );
        let mut p = playlist(2, 1);
        let text = p.render_low_latency(&[], Skip::Nothing);
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
        p.open_init = 2;
        let text = p.render_low_latency(&[], Skip::Nothing);
        assert!(
            text.contains("1.m4s\n#EXT-X-MAP:URI=\"0123456789abcdef-init-2.mp4\"\n#EXT-X-PART:"),
            "{text}"
        );
    }

    #[test]
    fn parts_after_a_reconnect_follow_a_discontinuity() {
        let mut p = playlist(2, 1);
        p.open_discontinuity = true;
        p.open_init = 2;
        let text = p.render_low_latency(&[], Skip::Nothing);
        assert!(
            text.contains("1.m4s\n#EXT-X-MAP:URI=\"0123456789abcdef-init-2.mp4\"\n#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.480,URI=\"0123456789abcdef-2.0.m4s\""),
            "{text}"
        );
        p.push(Segment {
            seq: 2,
            duration: Duration::from_millis(480),
            discontinuity: true,
            program_date_time: chrono::Utc::now(),
            size: 1,
            init: 2,
            parts: p.open_parts.clone(),
        });
        assert!(!p.open_discontinuity, "the closed segment carries it now");
    }

    #[test]
    fn an_ended_playlist_has_no_hint_and_no_reports() {
        let mut p = playlist(3, 0);
        p.ended = true;
        let text = p.render_low_latency(&report(), Skip::Nothing);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert!(!text.contains("PRELOAD-HINT") && !text.contains("RENDITION-REPORT"));
    }

    #[test]
    fn blocking_requests_wait_answer_or_are_refused() {
        let p = playlist(10, 2); // last part: 10.1
        assert_eq!(p.last_part(), Some((10, 1)));
        assert_eq!(p.block(10, Some(1)), Block::Ready);
        assert_eq!(p.block(3, Some(0)), Block::Ready);
        assert_eq!(
            p.block(9, Some(7)),
            Block::Ready,
            "past the segment's parts, closed"
        );
        assert_eq!(p.block(9, None), Block::Ready);
        assert_eq!(p.block(10, None), Block::Wait, "segment 10 is still open");
        assert_eq!(p.block(10, Some(2)), Block::Wait);
        assert_eq!(p.block(11, Some(0)), Block::Wait);
        assert_eq!(p.block(12, None), Block::Wait);
        // Hostile: far ahead in segments or parts, and the u64 edges.
        assert_eq!(p.block(13, None), Block::TooFar);
        assert_eq!(p.block(10, Some(8)), Block::TooFar);
        assert_eq!(p.block(u64::MAX - 1, Some(u64::MAX)), Block::TooFar);
        assert_eq!(p.block(10, Some(u64::MAX)), Block::TooFar);
        assert_eq!(p.block(0, Some(u64::MAX)), Block::Ready, "long gone");
        let mut ended = p.clone();
        ended.ended = true;
        assert_eq!(
            ended.block(11, Some(0)),
            Block::Ready,
            "nothing more will come"
        );
        assert_eq!(p.block_timeout(), Duration::from_secs(6));
    }

    /// A 30 s window of two-second segments after 20 segments and two open parts, with
    /// publisher reconnects at segments 2 (gone from the window), 9 (in the range a delta update
    /// skips) and 16 (in the part it keeps).
    fn dvr_playlist() -> MediaPlaylist {
        let mut p = playlist_with_reconnects(Duration::from_secs(30), 20, &[2, 9, 16]);
        p.push_part(part(500, true));
        p.push_part(part(500, false));
        p
    }

    fn uris(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
            .collect()
    }

    fn header_value<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(tag))
    }

    #[test]
    fn delta_update_snapshot() {
        insta::assert_snapshot!(dvr_playlist().render_low_latency(&report(), Skip::Segments));
    }

    #[test]
    fn a_delta_update_replaces_the_segments_beyond_the_boundary_and_keeps_what_applies_after() {
        let p = dvr_playlist();
        let full = p.render_low_latency(&report(), Skip::Nothing);
        let delta = p.render_low_latency(&report(), Skip::Segments);
        assert!(
            full.contains(",CAN-SKIP-UNTIL=12.000\n") && delta.contains(",CAN-SKIP-UNTIL=12.000\n"),
            "{full}"
        );
        assert!(!full.contains("EXT-X-SKIP") && full.contains("#EXT-X-VERSION:7\n"));
        // Version 9 for EXT-X-SKIP; the sequence numbers are those of the whole playlist.
        assert_eq!(header_value(&delta, "#EXT-X-VERSION:"), Some("9"));
        for tag in [
            "#EXT-X-MEDIA-SEQUENCE:",
            "#EXT-X-DISCONTINUITY-SEQUENCE:",
            "#EXT-X-TARGETDURATION:",
        ] {
            assert!(header_value(&full, tag).is_some(), "{tag}");
            assert_eq!(header_value(&delta, tag), header_value(&full, tag), "{tag}");
        }
        assert_eq!(header_value(&full, "#EXT-X-MEDIA-SEQUENCE:"), Some("5"));
        assert_eq!(
            header_value(&full, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
            Some("1")
        );
        // Segments 5..=12 end 14 s or more before the end of segment 19: skipped. Segment 13
        // ends exactly 12 s before it, not further: kept.
        assert_eq!(delta.matches("#EXT-X-SKIP:").count(), 1);
        assert_eq!(
            header_value(&delta, "#EXT-X-SKIP:"),
            Some("SKIPPED-SEGMENTS=8")
        );
        let (full_uris, delta_uris) = (uris(&full), uris(&delta));
        assert_eq!(full_uris.len(), 15);
        assert_eq!(
            delta_uris,
            full_uris[8..],
            "the delta is the tail of the playlist"
        );
        // The skip stands where the skipped segments were: after the header, before anything
        // of the first kept segment.
        let skip = delta.find("#EXT-X-SKIP:").expect("skip");
        let first_kept = delta.find("#EXT-X-MAP:").expect("map");
        assert!(
            skip < first_kept && delta[..skip].contains("#EXT-X-PART-INF:"),
            "{delta}"
        );
        // What applies to the first kept segment stays: its init and its wall clock.
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=8\n#EXT-X-MAP:URI=\"0123456789abcdef-init-3.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:37.000Z\n#EXTINF:2,\n0123456789abcdef-13.m4s\n"),
            "{delta}"
        );
        // The reconnect inside the skipped range goes with it; the one after it stays.
        assert_eq!(full.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{full}");
        assert_eq!(
            delta.matches("#EXT-X-DISCONTINUITY\n").count(),
            1,
            "{delta}"
        );
        assert!(
            delta
                .contains("#EXT-X-MAP:URI=\"0123456789abcdef-init-4.mp4\"\n#EXT-X-DISCONTINUITY\n")
        );
        // Everything after the skipped segments is the whole playlist's, line for line: every
        // part, the hint and the reports (parts are listed for 6 s, never beyond the boundary).
        let tail_start = full
            .find("#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:37")
            .expect("13");
        let tail = &full[tail_start..];
        assert!(delta.ends_with(tail), "{delta}");
        assert!(
            tail.contains("#EXT-X-PART:")
                && tail.contains("PRELOAD-HINT")
                && tail.contains("RENDITION-REPORT")
        );
        assert_eq!(
            full.matches("#EXT-X-PART:").count(),
            delta.matches("#EXT-X-PART:").count()
        );
        assert!(delta.len() < full.len());
    }

    #[test]
    fn v2_updates_list_no_removed_date_ranges_because_there_are_none() {
        let p = dvr_playlist();
        let yes = p.render_low_latency(&[], Skip::Segments);
        let v2 = p.render_low_latency(&[], Skip::SegmentsAndDateRanges);
        assert_eq!(
            v2,
            yes.replace(
                "SKIPPED-SEGMENTS=8\n",
                "SKIPPED-SEGMENTS=8,RECENTLY-REMOVED-DATERANGES=\"\"\n"
            )
        );
        assert!(
            !v2.contains("CAN-SKIP-DATERANGES"),
            "not advertised: nothing to skip"
        );
    }

    #[test]
    fn the_skip_boundary_is_six_target_durations_when_the_window_is_long_enough() {
        let mut p = dvr_playlist();
        assert_eq!(p.skip_boundary(), Some(Duration::from_secs(12)));
        // A segment that ran long raised the target duration: the boundary follows it.
        p.target_duration = 3;
        assert_eq!(p.skip_boundary(), Some(Duration::from_secs(18)));
        // The window must exceed the boundary by more than a target duration, or no full
        // window would hold a segment beyond it.
        p.target_duration = 2;
        p.window = Duration::from_secs(14);
        assert_eq!(p.skip_boundary(), None);
        p.window = Duration::from_secs(15);
        assert_eq!(p.skip_boundary(), Some(Duration::from_secs(12)));
        let mut ended = p.clone();
        ended.ended = true;
        assert_eq!(
            ended.skip_boundary(),
            None,
            "an ended playlist offers no delta"
        );
        let mut standard = p.clone();
        standard.part_target = None;
        assert_eq!(standard.skip_boundary(), None);
        // The default low-latency playlist of these tests has a 12 s window: no CAN-SKIP-UNTIL.
        assert_eq!(playlist(10, 2).skip_boundary(), None);
        assert!(
            !playlist(10, 2)
                .render_low_latency(&[], Skip::Nothing)
                .contains("CAN-SKIP")
        );
    }

    #[test]
    fn segments_are_skipped_only_when_they_end_beyond_the_boundary() {
        let mut p = MediaPlaylist::new(
            test_token(),
            SegmentFormat::Fmp4,
            2,
            Duration::from_secs(600),
        );
        p.part_target = Some(Duration::from_millis(500));
        let b = Duration::from_secs(12);
        assert_eq!(p.skipped_segments(b), 0, "empty");
        let push = |p: &mut MediaPlaylist, seq: u64, ms: u64| {
            p.push(Segment {
                seq,
                duration: Duration::from_millis(ms),
                discontinuity: false,
                program_date_time: chrono::Utc::now(),
                size: 1,
                init: 1,
                parts: Vec::new(),
            });
        };
        for seq in 0..6 {
            push(&mut p, seq, 2_000);
        }
        assert_eq!(
            p.skipped_segments(b),
            0,
            "segment 0 ends 10 s before the end"
        );
        push(&mut p, 6, 2_000);
        assert_eq!(
            p.skipped_segments(b),
            0,
            "segment 0 ends exactly 12 s before the end"
        );
        push(&mut p, 7, 1);
        assert_eq!(p.skipped_segments(b), 1, "now 12.001 s: skipped");
        push(&mut p, 8, 1_999);
        assert_eq!(
            p.skipped_segments(b),
            1,
            "segment 1 ends exactly 12 s before the end"
        );
        // Open parts are not the end of the last segment.
        p.push_part(part(500, true));
        assert_eq!(p.skipped_segments(b), 1);
        assert_eq!(p.skipped_segments(Duration::ZERO), 8, "all but the last");
        assert_eq!(p.skipped_segments(Duration::MAX), 0);
    }

    #[test]
    fn a_skip_the_playlist_does_not_offer_gets_the_whole_playlist() {
        // Too short a window, and an ended playlist: _HLS_skip is ignored (6.2.5.1).
        let short = playlist(10, 2);
        for skip in Skip::ALL {
            assert_eq!(
                short.render_low_latency(&report(), skip),
                short.render_low_latency(&report(), Skip::Nothing)
            );
        }
        let mut ended = dvr_playlist();
        ended.ended = true;
        let text = ended.render_low_latency(&report(), Skip::Segments);
        assert!(
            !text.contains("EXT-X-SKIP") && !text.contains("CAN-SKIP-UNTIL"),
            "{text}"
        );
        assert_eq!(uris(&text).len(), 15);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        // Early in a session nothing is beyond the boundary yet: a delta that skips nothing.
        let mut young = dvr_playlist();
        while young.segments.len() > 6 {
            young.segments.pop_front();
        }
        let text = young.render_low_latency(&[], Skip::Segments);
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=0\n"), "{text}");
        assert_eq!(uris(&text).len(), 6);
    }
}
