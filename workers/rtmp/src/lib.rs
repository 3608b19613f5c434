//! roomcast-rtmp: the RTMP server side that every roomcast listener speaks, in one hardened
//! piece. The media worker (publishers straight to a room) and the ingest gateway (publishers
//! to any room, relayed) both run it; neither has a copy of its own.
//!
//! ```text
//!  socket bytes ─► core::RtmpCore (sans-I/O: rml_rtmp handshake + ServerSession, time passed in)
//!               │     ├─ limits::SessionLimits: handshake / publish / idle deadlines, message size
//!               │     └─ key::PresentedKey: the stream name, redacted in every log line
//!               └─► core::IngestEvent (publish requested, metadata, audio, video, finished)
//!  answers      ─► io::write_by_deadline (a peer that stops reading is cut at the deadline)
//!  listener     ─► limits::RtmpLimits (the shared clap flags: caps, deadlines, sizes)
//!               ─► limits::refused (count by listener and reason, log once per offender)
//! ```

pub mod core;
mod error;
pub mod io;
pub mod key;
pub mod limits;

pub use error::{Error, Result};

/// The RTMP application publishers must use: `rtmp://HOST:1935/live/STREAM_KEY`.
pub const RTMP_APP: &str = "live";
