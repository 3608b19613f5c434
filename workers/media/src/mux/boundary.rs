//! Where segments are cut: at the first source keyframe at least one segment length after the
//! previous cut. The passthrough muxer and the GStreamer graph of the encoded rungs each run this
//! rule on the same keyframe timestamps, so every rendition cuts at the same instants and a
//! player can switch between them at any segment boundary.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_the_first_keyframe_a_segment_after_the_last_cut() {
        let ms = Duration::from_millis;
        let mut b = Boundaries::new(Duration::from_secs(2));
        assert!(!b.keyframe_opens_segment(ms(0)));
        assert!(!b.keyframe_opens_segment(ms(1000)));
        assert!(b.keyframe_opens_segment(ms(1950)), "within tolerance");
        assert!(!b.keyframe_opens_segment(ms(3000)));
        assert!(
            b.keyframe_opens_segment(ms(4500)),
            "late keyframe: longer segment"
        );
        assert!(b.keyframe_opens_segment(ms(6500)));
    }
}
