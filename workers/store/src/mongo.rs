//! MongoDB connections. The URI comes from a mounted Secret file (`WorkerConfig.mongodbUriFile`);
//! the database is the URI's default database, or [`DEFAULT_DATABASE`].

use std::time::Duration;

use mongodb::{Client, Database, bson::doc, options::ClientOptions};

use roomcast_runtime::{Secret, SecretError};

use crate::{Error, Result};

/// Database used when the URI names none.
pub const DEFAULT_DATABASE: &str = "roomcast";
/// How long the first connection may take before start-up fails.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A MongoDB URI: redacted (a [`Secret`]) because it usually carries a password.
#[derive(Clone, Debug)]
pub struct MongoUri(Secret);

impl MongoUri {
    pub fn new(uri: impl Into<String>) -> Self {
        Self(Secret::new(uri))
    }

    /// Read the URI from a mounted Secret file, ignoring surrounding whitespace.
    pub fn from_file(path: &str) -> Result<Self> {
        Secret::from_file(path).map(Self).map_err(|e| match e {
            SecretError::Read { source, .. } => Error::UriFile {
                path: path.to_owned(),
                source,
            },
            SecretError::Empty { .. } => Error::EmptyUri {
                path: path.to_owned(),
            },
        })
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// Connect, name the application, and ping so a wrong URI fails at start rather than on the
/// first write.
pub async fn connect(uri: &MongoUri, app_name: &str) -> Result<Database> {
    let mut options = ClientOptions::parse(uri.expose()).await?;
    options.app_name = Some(app_name.to_owned());
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
    }
    let database = options
        .default_database
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    let client = Client::with_options(options)?;
    let db = client.database(&database);
    db.run_command(doc! {"ping": 1}).await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_is_redacted_in_debug_output() {
        let uri = MongoUri::new("mongodb://user:hunter2@db:27017/chat");
        assert!(!format!("{uri:?}").contains("hunter2"));
    }

    #[test]
    fn empty_uri_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("uri");
        std::fs::write(&path, "\n").expect("write");
        let err = MongoUri::from_file(path.to_str().expect("utf-8")).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
