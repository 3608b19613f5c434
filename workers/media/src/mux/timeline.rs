//! The publisher's timestamps made safe to segment on. Media time is the peer's: RTMP carries
//! 32-bit milliseconds that a broken or hostile encoder may freeze, run backwards or jump by
//! days, and every rendition cuts its segments (and the playlist its `TARGETDURATION`) on that
//! time. Two sans-I/O pieces, run on every tag before the FLV muxer sees it:
//!
//! ```text
//! RTMP tag (u32 ms) -> Timeline::rebase -> FLV muxer -> source segmenter / GStreamer rungs
//!                          \-> ClockWatch::video (wall clock vs the rebased video time)
//! ```
//!
//! - [`Timeline`] rebases each track: a step forward of up to the keyframe limit passes as it
//!   is (the 32-bit wrap after 49.7 days is such a step, read modulo 2^32); a larger jump, or any
//!   step back, is a discontinuity, and the track carries on one frame after where it was, as a
//!   reconnect carries on where the last epoch stopped. So no segment is ever longer than a
//!   segment length plus the keyframe limit, whatever the peer sends. Every rendition (the
//!   passthrough source and the GStreamer rungs, which read the same rebased FLV) sees the same
//!   rebased times, so they still cut at the same instants.
//! - [`ClockWatch`] cuts a source whose video time falls behind the wall clock by more than the
//!   keyframe limit: frozen timestamps (every frame a keyframe at the same time) close no
//!   segment, and crawling ones close segments that hold many times their duration in bytes.

use std::time::{Duration, Instant};

use crate::mux::flv::TagKind;

/// One track's place on the rebased timeline.
#[derive(Clone, Copy, Debug)]
struct Track {
    /// The peer's last timestamp on this track.
    raw: u32,
    /// Where it was put, in ms from the publish's first tag.
    out: u64,
    /// The last normal step forward (a frame's duration), what a rebased track advances by.
    step: u64,
}

/// What [`Timeline::rebase`] made of one tag's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rebased {
    /// Milliseconds from the publish's first tag, monotonic per track.
    pub timestamp_ms: u32,
    /// The peer's timestamp jumped (forward past the limit, or back) by this many ms, signed;
    /// `None` for a normal step.
    pub jump_ms: Option<i64>,
}

/// Per-track rebasing of a publisher's timestamps (see the module documentation).
#[derive(Clone, Debug)]
pub struct Timeline {
    max_step_ms: i64,
    /// The peer's first timestamp, on either track: both tracks are measured from it, so their
    /// offset to each other (audio a little ahead of video, say) is kept.
    origin: Option<u32>,
    video: Option<Track>,
    audio: Option<Track>,
}

/// A rebased track moves on by this much when it has no step of its own yet.
const FIRST_STEP_MS: u64 = 1;

/// `b - a` read as a signed step modulo 2^32: RTMP timestamps wrap after 49.7 days, and a
/// step across the wrap is a step forward like any other.
fn wrapping_step(a: u32, b: u32) -> i64 {
    i64::from(b.wrapping_sub(a) as i32)
}

impl Timeline {
    /// `max_step` is the keyframe limit ([`crate::mux::boundary::keyframe_gap_limit`]).
    pub fn new(max_step: Duration) -> Self {
        Timeline {
            max_step_ms: i64::try_from(max_step.as_millis()).unwrap_or(i64::MAX),
            origin: None,
            video: None,
            audio: None,
        }
    }

    /// The rebased time of one tag of `kind` the peer stamped `raw`.
    pub fn rebase(&mut self, kind: TagKind, raw: u32) -> Rebased {
        let origin = *self.origin.get_or_insert(raw);
        let max = self.max_step_ms;
        let normal = |step: i64| (0..=max).contains(&step);
        let track = match kind {
            TagKind::Video => &mut self.video,
            TagKind::Audio => &mut self.audio,
        };
        let (out, step, jump_ms) = match track {
            // A track's first tag is placed against the publish's first tag; one too far from
            // it starts at the beginning.
            None => {
                let step = wrapping_step(origin, raw);
                let out = if normal(step) { step.unsigned_abs() } else { 0 };
                (out, FIRST_STEP_MS, (!normal(step)).then_some(step))
            }
            Some(t) => {
                let step = wrapping_step(t.raw, raw);
                if normal(step) {
                    let own = if step > 0 {
                        step.unsigned_abs()
                    } else {
                        t.step
                    };
                    (t.out + step.unsigned_abs(), own, None)
                } else {
                    (t.out + t.step, t.step, Some(step))
                }
            }
        };
        *track = Some(Track { raw, out, step });
        Rebased {
            // After 49.7 days of one publish the rebased time wraps too, as the peer's would.
            timestamp_ms: out as u32,
            jump_ms,
        }
    }
}

/// Cuts a source whose video time stalls against the wall clock (see the module documentation).
/// Measured in windows that restart once the video time has advanced by the limit, so a
/// publisher whose encoder clock runs a little slow for days is not cut.
#[derive(Clone, Debug)]
pub struct ClockWatch {
    limit: Duration,
    /// Start of the current window: video time (rebased ms) and wall clock.
    window: Option<(u32, Instant)>,
}

impl ClockWatch {
    /// `limit` is the keyframe limit ([`crate::mux::boundary::keyframe_gap_limit`]).
    pub fn new(limit: Duration) -> Self {
        ClockWatch {
            limit,
            window: None,
        }
    }

    /// One video frame at rebased time `timestamp_ms`, read at `now`. False when the video time
    /// fell behind the wall clock by more than the limit since the window started.
    pub fn video(&mut self, timestamp_ms: u32, now: Instant) -> bool {
        let Some((start_ms, start)) = self.window else {
            self.window = Some((timestamp_ms, now));
            return true;
        };
        let media = Duration::from_millis(u64::from(timestamp_ms.saturating_sub(start_ms)));
        let wall = now.saturating_duration_since(start);
        if wall > media + self.limit {
            return false;
        }
        if media >= self.limit {
            self.window = Some((timestamp_ms, now));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(20);

    fn times(timeline: &mut Timeline, tags: &[(TagKind, u32)]) -> Vec<u32> {
        tags.iter()
            .map(|&(kind, raw)| timeline.rebase(kind, raw).timestamp_ms)
            .collect()
    }

    use TagKind::{Audio as A, Video as V};

    #[test]
    fn an_honest_stream_keeps_its_times_from_its_first_tag_on() {
        let mut t = Timeline::new(LIMIT);
        // OBS after a reconnect: timestamps do not start at zero; audio a little ahead.
        let out = times(
            &mut t,
            &[(V, 5_000), (A, 5_010), (V, 5_033), (A, 5_031), (V, 5_067)],
        );
        assert_eq!(out, [0, 10, 33, 31, 67]);
    }

    #[test]
    fn a_jump_of_a_million_seconds_is_rebased_one_frame_on() {
        let mut t = Timeline::new(LIMIT);
        times(
            &mut t,
            &[(V, 0), (A, 0), (V, 33), (A, 21), (V, 66), (A, 42)],
        );
        let jumped = t.rebase(V, 66 + 1_000_000_000);
        assert_eq!(jumped.timestamp_ms, 99, "one frame after the last");
        assert_eq!(jumped.jump_ms, Some(1_000_000_000));
        // Audio jumps with it and carries on one frame after its own last time.
        assert_eq!(t.rebase(A, 42 + 1_000_000_000).timestamp_ms, 63);
        // Both then go on from there as normal.
        let out = times(&mut t, &[(V, 1_000_000_099), (A, 1_000_000_063)]);
        assert_eq!(out, [132, 84]);
    }

    #[test]
    fn a_step_of_exactly_the_limit_is_normal_and_one_more_ms_is_a_jump() {
        let mut t = Timeline::new(LIMIT);
        t.rebase(V, 0);
        assert_eq!(
            t.rebase(V, 20_000),
            Rebased {
                timestamp_ms: 20_000,
                jump_ms: None
            }
        );
        let over = t.rebase(V, 40_001);
        assert_eq!(over.jump_ms, Some(20_001));
        assert_eq!(over.timestamp_ms, 40_000, "moved on by its last step");
    }

    #[test]
    fn backwards_timestamps_never_move_a_track_back() {
        let mut t = Timeline::new(LIMIT);
        let out = times(&mut t, &[(V, 10_000), (V, 10_040), (V, 10_080)]);
        assert_eq!(out, [0, 40, 80]);
        let back = t.rebase(V, 10_000);
        assert_eq!(
            back,
            Rebased {
                timestamp_ms: 120,
                jump_ms: Some(-80)
            }
        );
        // Back to zero, half the range ahead, then back again: each a jump.
        let mut last = 120;
        for raw in [0, u32::MAX / 2, 3] {
            let r = t.rebase(V, raw);
            assert!(r.timestamp_ms > last, "{raw} went to {r:?} after {last}");
            last = r.timestamp_ms;
        }
    }

    #[test]
    fn frozen_timestamps_are_normal_steps_of_zero() {
        let mut t = Timeline::new(LIMIT);
        let out = times(&mut t, &[(V, 7), (V, 7), (V, 7), (A, 7)]);
        assert_eq!(out, [0, 0, 0, 0]);
    }

    #[test]
    fn the_32_bit_wrap_after_49_days_is_a_step_forward() {
        let mut t = Timeline::new(LIMIT);
        let near = u32::MAX - 40;
        let r = times(&mut t, &[(V, near), (A, near + 10), (V, near + 33)]);
        assert_eq!(r, [0, 10, 33]);
        // 2^32 ms wraps to a few ms: 33 ms later on both tracks.
        assert_eq!(
            t.rebase(V, 25),
            Rebased {
                timestamp_ms: 66,
                jump_ms: None
            }
        );
        assert_eq!(
            t.rebase(A, 2),
            Rebased {
                timestamp_ms: 43,
                jump_ms: None
            }
        );
    }

    #[test]
    fn audio_that_jumps_alone_leaves_the_video_where_it_is() {
        let mut t = Timeline::new(LIMIT);
        times(&mut t, &[(V, 0), (A, 0), (V, 33), (A, 23)]);
        // The audio clock leaps an hour ahead, then back; the video goes on as it was.
        let out = times(
            &mut t,
            &[(A, 3_600_046), (V, 66), (A, 69), (V, 99), (A, 92)],
        );
        assert_eq!(out, [46, 66, 69, 99, 92]);
    }

    #[test]
    fn a_second_track_far_from_the_first_starts_at_zero() {
        let mut t = Timeline::new(LIMIT);
        t.rebase(V, 1_000_000);
        let audio = t.rebase(A, 5);
        assert_eq!(audio.timestamp_ms, 0);
        assert_eq!(audio.jump_ms, Some(5 - 1_000_000));
    }

    #[test]
    fn frozen_video_time_is_cut_after_the_limit_of_wall_clock() {
        let t0 = Instant::now();
        let mut watch = ClockWatch::new(LIMIT);
        assert!(watch.video(0, t0));
        assert!(watch.video(0, t0 + LIMIT), "exactly at the limit");
        assert!(!watch.video(0, t0 + LIMIT + Duration::from_millis(1)));
    }

    #[test]
    fn real_time_faster_time_and_stalls_shorter_than_the_limit_pass() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut watch = ClockWatch::new(LIMIT);
        for ms in (0..600_000u64).step_by(33) {
            assert!(watch.video(ms as u32, at(ms)), "real time at {ms} ms");
        }
        // A 15 s network stall: the frames after it carry the time they were captured at.
        assert!(watch.video(615_000, at(615_000)));
        // An encoder clock 1 % slow for a day: each window falls behind by far less.
        let mut watch = ClockWatch::new(LIMIT);
        for s in 0..86_400u64 {
            assert!(watch.video((s * 990) as u32, at(s * 1000)), "slow at {s} s");
        }
        // A file pushed faster than real time.
        let mut watch = ClockWatch::new(LIMIT);
        for ms in (0..600_000u64).step_by(33) {
            assert!(watch.video(ms as u32, at(ms / 10)));
        }
    }

    #[test]
    fn crawling_timestamps_are_cut() {
        let t0 = Instant::now();
        let mut watch = ClockWatch::new(LIMIT);
        // Media time at a third of real time: 40 s behind after a minute of wall clock.
        let cut = (0..120_000u64)
            .step_by(33)
            .find(|ms| !watch.video((ms / 3) as u32, t0 + Duration::from_millis(*ms)));
        let at = cut.expect("a crawling clock was never cut");
        assert!((30_000..=31_000).contains(&at), "cut at {at} ms");
    }
}
