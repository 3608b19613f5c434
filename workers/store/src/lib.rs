//! Connections to roomcast's stores, shared by the workers that keep state:
//!
//! ```text
//!   chat history, bans  ──┐                   ┌─> MongoDB (`mongodb_uri_file` set): production
//!   recording catalog   ──┼─> roomcast-store ─┤
//!                         │                   └─> redb file under a data directory: `roomcast dev`,
//!                         │                       rooms without MongoDB
//! ```
//!
//! This crate opens connections and, for redb, runs the transactions ([`embedded::blocking`],
//! [`embedded::read`], [`embedded::write`]); each worker owns its collections/tables, its
//! documents and the trait that hides which store is in use. With the `test-support` feature it also starts the
//! MongoDB-compatible test server (PyPI `secantusdb`) on a free loopback port.

pub mod embedded;
pub mod mongo;
#[cfg(feature = "test-support")]
pub mod test_support;

/// Everything that can go wrong opening a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the MongoDB URI file {path}: {source}")]
    UriFile {
        path: String,
        source: std::io::Error,
    },
    #[error("MongoDB URI file {path} is empty")]
    EmptyUri { path: String },
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("opening the embedded store {path}: {source}")]
    Embedded {
        path: String,
        source: Box<redb::Error>,
    },
    #[cfg(feature = "test-support")]
    #[error("test server: {0}")]
    TestServer(String),
}

impl Error {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::UriFile { .. } | Error::EmptyUri { .. } => "uri_file",
            Error::Mongo(_) => "mongodb",
            Error::DataDir { .. } | Error::Embedded { .. } => "embedded",
            #[cfg(feature = "test-support")]
            Error::TestServer(_) => "test_server",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
