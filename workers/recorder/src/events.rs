//! The recorder's input, which is also the media worker's session event type
//! (`roomcast_media::MediaEvent` re-exports it): the worker's events reach the recorder as they
//! are.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::playlist::StreamAttributes;

/// A CMAF init segment (`ftyp` + `moov`): what every segment that names it plays after.
#[derive(Clone, Debug, PartialEq)]
pub struct InitSegment {
    /// Numbered by the session per rendition; a new one after each publisher reconnect.
    pub id: u32,
    pub bytes: Bytes,
}

/// How a segment is muxed, which decides its file name and how a demuxer opens it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SegmentFormat {
    /// `<seq>.ts`, self-contained.
    #[default]
    MpegTs,
    /// `<seq>.m4s`, playable after its `init-<id>.mp4`.
    Cmaf,
}

impl SegmentFormat {
    /// The file extension of its segments.
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::MpegTs => "ts",
            SegmentFormat::Cmaf => "m4s",
        }
    }
}

/// The file name of init segment `id`, next to the segments of its rendition.
pub fn init_file_name(id: u32) -> String {
    format!("init-{id}.mp4")
}

/// The id of an init segment's file name ([`init_file_name`]); `None` for any other name.
pub fn parse_init_file_name(file: &str) -> Option<u32> {
    let digits = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
    canonical_number(digits)
}

/// The sequence number and format of a segment's file name (`<seq>.ts`, `<seq>.m4s`); `None`
/// for any other name.
pub fn parse_segment_file_name(file: &str) -> Option<(u64, SegmentFormat)> {
    [SegmentFormat::MpegTs, SegmentFormat::Cmaf]
        .into_iter()
        .find_map(|format| {
            let digits = file.strip_suffix(format.extension())?.strip_suffix('.')?;
            Some((canonical_number(digits)?, format))
        })
}

/// Digits as the recorder (and the live origin) writes numbers: no sign, no leading zero (so
/// one number has one file name).
pub fn canonical_number<N: std::str::FromStr + ToString>(digits: &str) -> Option<N> {
    let n: N = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

#[derive(Clone, Debug)]
pub enum RecordEvent {
    SessionStarted {
        session_id: String,
        /// `namespace/name`.
        room: String,
        renditions: Vec<String>,
        started_at: SystemTime,
    },
    SegmentClosed {
        session_id: String,
        room: String,
        rendition: String,
        seq: u64,
        duration: Duration,
        discontinuity: bool,
        program_date_time: SystemTime,
        /// The segment: MPEG-TS, or with `init` set CMAF media (its moof/mdat pairs).
        bytes: Bytes,
        /// The init segment a CMAF segment plays after; `None` for MPEG-TS, which needs none.
        init: Option<InitSegment>,
        /// What the rendition's stream looks like (for the VOD master).
        attributes: StreamAttributes,
    },
    SessionEnded {
        session_id: String,
        room: String,
        started_at: SystemTime,
        ended_at: SystemTime,
        /// Segments per rendition over the whole session (informational).
        segments: u64,
        /// False finalises the session as `interrupted`.
        clean: bool,
    },
}

impl RecordEvent {
    pub fn session_id(&self) -> &str {
        match self {
            RecordEvent::SessionStarted { session_id, .. }
            | RecordEvent::SegmentClosed { session_id, .. }
            | RecordEvent::SessionEnded { session_id, .. } => session_id,
        }
    }

    pub fn room(&self) -> &str {
        match self {
            RecordEvent::SessionStarted { room, .. }
            | RecordEvent::SegmentClosed { room, .. }
            | RecordEvent::SessionEnded { room, .. } => room,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_others_are_not_taken_for_segments() {
        assert_eq!(parse_init_file_name(&init_file_name(3)), Some(3));
        assert_eq!(
            parse_segment_file_name("12.m4s"),
            Some((12, SegmentFormat::Cmaf))
        );
        assert_eq!(
            parse_segment_file_name("0.ts"),
            Some((0, SegmentFormat::MpegTs))
        );
        for other in [
            "index.m3u8",
            "init-.mp4",
            "init-01.mp4",
            "init--1.mp4",
            "init-4294967296.mp4",
            "init-1.mp4.m4s",
            "+1.ts",
            "01.m4s",
            ".m4s",
            "1m4s",
            "1.mp4",
            "poster.jpg",
        ] {
            assert_eq!(
                (parse_init_file_name(other), parse_segment_file_name(other)),
                (None, None),
                "{other}"
            );
        }
    }
}
