//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the gateway.
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
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Rtmp(#[from] roomcast_rtmp::Error),
    #[error("routing: {0}")]
    Routes(#[from] roomcast_crds::ingest_routes::RouteTableError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("PROXY protocol header: {0}")]
    ProxyHeader(String),
    #[error("backend {backend}: {message}")]
    Backend {
        backend: String,
        /// Stable label of what went wrong (`relay_errors_total` reason).
        reason: &'static str,
        message: String,
    },
    /// A publish the gateway refused; `reason` is the `refusals_total` label.
    #[error("publish refused: {message}")]
    Refused {
        reason: &'static str,
        message: String,
    },
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn backend(backend: &str, reason: &'static str, message: impl Into<String>) -> Self {
        Error::Backend {
            backend: backend.to_owned(),
            reason,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
