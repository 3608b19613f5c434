//! The recorder: every live session of a StreamRoom kept for replay ("past broadcasts").
//!
//! The media worker maps its session events 1:1 onto [`RecordEvent`] and hands them to
//! [`Recorder::record`], which never blocks and never fails: a segment is either accepted into a
//! bounded on-disk spool or dropped from the recording (counted, logged, and reported through
//! [`Recorder::health`]). Background tasks upload, finalise and catalogue:
//!
//! ```text
//!  media worker ──RecordEvent──> Recorder::record (sync, O(1))
//!                                   │ unbounded queue, bytes bounded by the spool budget
//!                                   v
//!                              spool writer ──> <spool>/<session>/{manifest.json, segments.log,
//!                                   │                  <rendition>/<seq>.ts | init-<id>.mp4 + <seq>.m4s}
//!                                   v
//!                              uploader (N concurrent, backon retries with jitter)
//!                                   │  PUT <prefix><ns>/<room>/<session>/<rendition>/<seq>.ts
//!                                   │   (CMAF: each init-<id>.mp4 once, then <seq>.m4s)
//!                                   │  then deletes the spooled file
//!                                   v
//!                              finaliser (after every segment of the session is stored)
//!                                   │  <rendition>/index.m3u8 (VOD), index.m3u8 (master),
//!                                   │  poster.jpg (optional), session.json, then the catalog
//!                                   │  entry, then the spool dir
//!                                   v
//!          ObjectStore (S3 | local directory)      Catalog (MongoDB | redb)
//!                   ^                                   ^
//!                   └──── api::router: list / get / VOD proxy (under /<ns>/<room>/) ───┘
//! ```
//!
//! Each stage of the picture is one module of [`recorder`] (`writer`, `uploader`, `finaliser`,
//! `recovery`), wired together by [`Recorder`].
//!
//! On start, [`Recorder::start`] finds sessions a previous process left in the spool (crash,
//! SIGKILL), uploads what remains and finalises them as `interrupted`. [`retention`] deletes
//! sessions older than `retentionDays`.

pub mod api;
#[cfg(test)]
mod bench_tests;
pub mod catalog;
pub mod config;
pub mod events;
pub mod metrics;
#[cfg(test)]
mod playback_tests;
pub mod playlist;
pub mod poster;
pub mod recorder;
pub mod retention;
pub mod spool;
pub mod store;
/// A real S3 server for tests (s3s + s3s-fs), for this crate and the media worker's tests.
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use catalog::{Catalog, DynCatalog, Recording, RecordingStatus};
pub use config::{RecorderConfig, Secret};
pub use events::{InitSegment, RecordEvent, SegmentFormat};
pub use recorder::{Health, Recorder, Uploaded};
pub use roomcast_crds::RoomIdentity;
pub use store::{DynStore, ObjectStore};

/// Everything that can go wrong in the recorder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config field {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("S3 {op} {key}: {message}")]
    S3 {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("local store {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid object key {0:?}")]
    Key(String),
    #[error("spool {path}: {source}")]
    Spool {
        path: String,
        source: std::io::Error,
    },
    #[error("catalog (MongoDB): {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("catalog (embedded): {0}")]
    Embedded(String),
    #[error("store: {0}")]
    Store(#[from] roomcast_store::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid name {0:?}: expected letters, digits, '.', '_' or '-'")]
    Name(String),
    #[error("invalid room: {0}")]
    Room(#[from] roomcast_crds::identity::ParseRoomError),
    #[error("poster: {0}")]
    Poster(String),
}

impl Error {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::S3 { .. } => "s3",
            Error::Local { .. } => "local_store",
            Error::Key(_) => "key",
            Error::Spool { .. } => "spool",
            Error::Mongo(_) => "mongodb",
            Error::Embedded(_) => "embedded",
            Error::Store(_) => "store",
            Error::Json(_) => "json",
            Error::Name(_) => "name",
            Error::Room(_) => "room",
            Error::Poster(_) => "poster",
        }
    }

    pub(crate) fn embedded(e: impl std::fmt::Display) -> Self {
        Error::Embedded(e.to_string())
    }

    pub(crate) fn spool(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Spool {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl roomcast_store::embedded::EmbeddedError for Error {
    fn from_redb(e: impl std::fmt::Display) -> Self {
        Error::embedded(e)
    }
}

/// A name used as one path component (session id, rendition): letters, digits, `.`, `_`, `-`,
/// not starting with a dot.
pub fn check_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(Error::Name(name.to_owned()))
    }
}

/// A room as the recorder's events and the catalog write it (`namespace/name`), checked: both
/// parts are DNS-1123 labels, so a room can never climb out of a key prefix or the spool.
pub fn parse_room(room: &str) -> Result<RoomIdentity> {
    Ok(room.parse()?)
}

/// The key prefix of one session: `<prefix><namespace>/<room>/<session-id>/`.
pub fn session_prefix(prefix: &str, room: &RoomIdentity, session_id: &str) -> String {
    format!("{prefix}{room}/{session_id}/")
}

/// The key of a file of one rendition of a session (a segment, an init segment, a playlist):
/// `<prefix><namespace>/<room>/<session-id>/<rendition>/<file>`.
pub fn rendition_key(
    prefix: &str,
    room: &RoomIdentity,
    session_id: &str,
    rendition: &str,
    file: &str,
) -> String {
    format!(
        "{}{rendition}/{file}",
        session_prefix(prefix, room, session_id)
    )
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// RFC 3339 for Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_refused() {
        for bad in ["", "..", ".hidden", "a/b", "a b", "x\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["720p", "source", "01J9-abc_def.1"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn rooms_that_could_escape_a_key_prefix_or_the_spool_are_refused() {
        assert_eq!(
            parse_room("shows/lobby").expect("room"),
            RoomIdentity::new("shows", "lobby")
        );
        for bad in [
            "",
            "shows",
            "shows/",
            "/lobby",
            "shows/..",
            "shows/../x",
            "../../etc/passwd",
            "shows/lobby/../../x",
            "shows/.hidden",
            "shows/lo\0by",
            "shows/lo\\by",
            "shows/Lobby",
            "shows/lobby%2F..",
        ] {
            let err = parse_room(bad).expect_err(bad);
            assert_eq!(err.label(), "room", "{bad:?}");
        }
    }

    #[test]
    fn session_keys_follow_the_design_layout() {
        assert_eq!(
            session_prefix("rooms/", &RoomIdentity::new("shows", "lobby"), "s1"),
            "rooms/shows/lobby/s1/"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
