//! The recorder's input, which is also the media worker's session event type
//! (`roomcast_media::MediaEvent` re-exports it): the worker's events reach the recorder as they
//! are.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::playlist::StreamAttributes;

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
        /// The MPEG-TS segment.
        bytes: Bytes,
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
