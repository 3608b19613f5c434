//! The crate's one error type.

/// What can end an RTMP connection inside the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rtmp handshake: {0}")]
    Handshake(String),
    #[error("rtmp session: {0}")]
    Rtmp(String),
    #[error("listener limit: {0}")]
    Limit(crate::limits::Limit),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Handshake(_) => "handshake",
            Error::Rtmp(_) => "rtmp",
            Error::Limit(l) => l.label(),
            Error::Io(_) => "io",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
