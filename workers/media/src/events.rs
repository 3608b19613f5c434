//! Events for the recorder (next issue) and anything else that follows sessions. Delivered on a
//! `tokio::sync::broadcast` channel from [`crate::MediaServer::subscribe`]; a subscriber that lags
//! by more than [`EVENT_CAPACITY`] events misses some and is told so by the channel.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

pub const EVENT_CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
pub enum MediaEvent {
    SessionStarted {
        session_id: String,
        /// `namespace/name`.
        room: String,
        renditions: Vec<String>,
        started_at: DateTime<Utc>,
    },
    SegmentClosed {
        session_id: String,
        room: String,
        rendition: String,
        seq: u64,
        duration: Duration,
        discontinuity: bool,
        program_date_time: DateTime<Utc>,
        /// The MPEG-TS segment (shared, cheap to clone).
        bytes: Bytes,
    },
    SessionEnded {
        session_id: String,
        room: String,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        /// Segments per rendition over the whole session.
        segments: u64,
        /// True when the publisher never came back within the grace period or the worker shut
        /// down; false never happens today (kept for the recorder's `interrupted` status).
        clean: bool,
    },
}
