//! Where segments are cut: at the first source keyframe at least one segment length after the
//! previous cut. The passthrough muxer and the GStreamer graph of the encoded rungs each run this
//! rule on the same keyframe timestamps, so every rendition cuts at the same instants and a
//! player can switch between them at any segment boundary.

use std::time::{Duration, Instant};

/// A keyframe this close to a full segment still closes it (timestamps are in ms).
pub const TOLERANCE: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct Boundaries {
    segment: Duration,
    last: Option<Duration>,
}

impl Boundaries {
    pub fn new(segment: Duration) -> Self {
        Boundaries {
            segment,
            last: None,
        }
    }

    /// Called for every source keyframe, in order, with its presentation time. True when it
    /// closes the open segment and opens the next; the first keyframe opens the first segment
    /// and closes nothing.
    pub fn keyframe_opens_segment(&mut self, at: Duration) -> bool {
        match self.last {
            None => {
                self.last = Some(at);
                false
            }
            Some(prev) if at + TOLERANCE >= prev + self.segment => {
                self.last = Some(at);
                true
            }
            Some(_) => false,
        }
    }
}

/// Segments close only on source keyframes, in every rendition, so a source that stops sending
/// them leaves every open segment growing. This watch says when the gap since the last
/// keyframe passed the limit, in media time or in wall-clock time (timestamps come from the
/// peer: one that freezes them must not dodge the limit). The limit is never less than four
/// segment lengths: a keyframe interval of a few segments is a slow encoder, not a broken one.
#[derive(Clone, Debug)]
pub struct KeyframeGap {
    limit: Duration,
    last_keyframe: Option<(i64, Instant)>,
}

/// How long a source may go without a keyframe (`--rtmp-keyframe-timeout-seconds`, at least
/// four segment lengths): the longest a segment may stay open, so also the bound on a forward
/// jump of the publisher's timestamps and on how far they may fall behind the wall clock
/// ([`crate::mux::timeline`]).
pub fn keyframe_gap_limit(timeout: Duration, segment: Duration) -> Duration {
    timeout.max(segment * 4)
}

impl KeyframeGap {
    pub fn new(limit: Duration, segment: Duration) -> Self {
        KeyframeGap {
            limit: keyframe_gap_limit(limit, segment),
            last_keyframe: None,
        }
    }

    /// One video frame with media time `timestamp_ms`, read at `now`. False when the last
    /// keyframe is longer ago than the limit, keyframes included: one that comes too late has
    /// already let its segment run longer than the limit (and than the playlist's bound on
    /// `TARGETDURATION`). Frames before the first keyframe wait for it: the connection's
    /// deadlines bound that wait.
    pub fn frame(&mut self, timestamp_ms: u32, now: Instant, keyframe: bool) -> bool {
        let t = i64::from(timestamp_ms);
        let limit_ms = i64::try_from(self.limit.as_millis()).unwrap_or(i64::MAX);
        let within = self.last_keyframe.is_none_or(|(media, wall)| {
            t.saturating_sub(media) <= limit_ms && now.saturating_duration_since(wall) <= self.limit
        });
        if keyframe {
            self.last_keyframe = Some((t, now));
        }
        within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_without_keyframes_is_flagged_after_the_limit() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut gap = KeyframeGap::new(Duration::from_secs(20), Duration::from_secs(2));
        assert!(
            gap.frame(0, at(0), false),
            "before the first keyframe: waiting"
        );
        assert!(gap.frame(100, at(100), true));
        assert!(gap.frame(20_100, at(20_100), false), "exactly at the limit");
        assert!(!gap.frame(20_101, at(20_101), false));
        assert!(gap.frame(20_090, at(20_090), true), "a keyframe resets it");
        assert!(gap.frame(40_000, at(40_000), false));
    }

    #[test]
    fn a_keyframe_that_comes_too_late_is_flagged_too() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut gap = KeyframeGap::new(Duration::from_secs(20), Duration::from_secs(2));
        assert!(gap.frame(0, at(0), true));
        // Every frame a keyframe, each 19 s after the last: a segment per keyframe, within.
        assert!(gap.frame(19_000, at(19_000), true));
        assert!(gap.frame(38_000, at(38_000), true));
        // 20.001 s of media time, or of wall clock, since the last keyframe.
        assert!(!gap.frame(58_001, at(58_000), true));
        assert!(!gap.frame(58_002, at(78_002), true));
    }

    #[test]
    fn frozen_timestamps_do_not_dodge_the_limit() {
        let t0 = Instant::now();
        let mut gap = KeyframeGap::new(Duration::from_secs(20), Duration::from_secs(2));
        assert!(gap.frame(0, t0, true));
        assert!(gap.frame(0, t0 + Duration::from_secs(20), false));
        assert!(!gap.frame(0, t0 + Duration::from_secs(21), false));
    }

    #[test]
    fn the_gap_is_never_shorter_than_four_segments() {
        let t0 = Instant::now();
        let mut gap = KeyframeGap::new(Duration::from_secs(1), Duration::from_secs(10));
        assert!(gap.frame(0, t0, true));
        assert!(gap.frame(39_000, t0, false), "a 40 s limit, not 1 s");
        assert!(!gap.frame(40_001, t0, false));
    }
}
