//! The crate's one error type.

use crate::token::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] roomcast_store::Error),
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("embedded store: {0}")]
    Embedded(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("socket.io adapter: {0}")]
    Adapter(String),
    #[error("Redis rate limits: {0}")]
    SharedLimit(#[from] crate::sharedlimit::SharedLimitError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    #[error("Kubernetes client for room status reports: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::ReadFile { .. } => "read_file",
            Error::Token(_) => "token",
            Error::Store(_) => "store",
            Error::Mongo(_) => "mongodb",
            Error::Embedded(_) => "embedded",
            Error::Corrupt(_) => "corrupt",
            Error::Redis(_) => "redis",
            Error::Adapter(_) => "adapter",
            Error::SharedLimit(_) => "shared_limit",
            Error::Listen { .. } => "listen",
            Error::Runtime(_) => "runtime",
            Error::Serve(_) => "serve",
            Error::Kube(_) => "kube",
        }
    }

    pub(crate) fn embedded(e: impl std::fmt::Display) -> Self {
        Error::Embedded(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
