//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the media worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {field}: {message}")]
    Config { field: String, message: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network: {0}")]
    Net(#[from] std::io::Error),
    /// The shared RTMP core's handshake or session errors (its limits become [`Error::Limit`]).
    #[error(transparent)]
    Rtmp(roomcast_rtmp::Error),
    #[error("listener limit: {0}")]
    Limit(crate::limits::Limit),
    #[error("publish refused: {0}")]
    Refused(RefuseReason),
    #[error("unsupported media: {0}")]
    Unsupported(String),
    #[error("gstreamer: {0}")]
    Gst(String),
    #[error("missing gstreamer element {0}")]
    MissingElement(String),
    #[error("transcoder stalled: {0}")]
    Stalled(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording: {0}")]
    Recorder(#[from] roomcast_recorder::Error),
    #[error("store: {0}")]
    Store(#[from] roomcast_store::Error),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

/// The shared RTMP core's errors keep their meaning (and labels) in the worker: its limits are
/// the worker's limits, counted as refusals.
impl From<roomcast_rtmp::Error> for Error {
    fn from(e: roomcast_rtmp::Error) -> Self {
        match e {
            roomcast_rtmp::Error::Limit(l) => Error::Limit(l),
            e => Error::Rtmp(e),
        }
    }
}

impl Error {
    /// Short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Io { .. } => "io",
            Error::Net(_) => "net",
            Error::Rtmp(e) => e.label(),
            Error::Limit(l) => l.label(),
            Error::Refused(r) => r.label(),
            Error::Unsupported(_) => "unsupported_media",
            Error::Gst(_) => "gstreamer",
            Error::MissingElement(_) => "missing_element",
            Error::Stalled(_) => "stalled",
            Error::Listen { .. } => "listen",
            Error::Recorder(_) => "recorder",
            Error::Store(_) => "store",
            Error::Kube(_) => "kube",
        }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a publish was refused; also the `reason` label of
/// `roomcast_media_publishes_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The RTMP application is not `live`.
    UnknownApp,
    /// The stream name matches no room's stream key.
    WrongKey,
    /// The room already has a live publisher.
    AlreadyLive,
    /// The stream key file could not be read.
    KeyUnavailable,
    /// The worker is shutting down.
    ShuttingDown,
}

impl RefuseReason {
    pub fn label(self) -> &'static str {
        match self {
            RefuseReason::UnknownApp => "unknown_app",
            RefuseReason::WrongKey => "wrong_key",
            RefuseReason::AlreadyLive => "already_live",
            RefuseReason::KeyUnavailable => "key_unavailable",
            RefuseReason::ShuttingDown => "shutting_down",
        }
    }
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefuseReason::UnknownApp => {
                "unknown RTMP application (use rtmp://HOST:1935/live/STREAM_KEY)"
            }
            RefuseReason::WrongKey => "stream key matches no room",
            RefuseReason::AlreadyLive => "the room already has a live publisher",
            RefuseReason::KeyUnavailable => "the room's stream key file cannot be read",
            RefuseReason::ShuttingDown => "the worker is shutting down",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
