//! The embedded store: one redb file per worker kind under a data directory, used when no
//! MongoDB is configured (`roomcast dev`, single-replica rooms). redb is synchronous; callers
//! run transactions on `tokio::task::spawn_blocking`.

use std::{path::Path, sync::Arc};

use crate::{Error, Result};

/// Open (or create) `<data_dir>/<file_name>`, creating the directory if needed.
pub fn open(data_dir: &Path, file_name: &str) -> Result<Arc<redb::Database>> {
    std::fs::create_dir_all(data_dir).map_err(|source| Error::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let path = data_dir.join(file_name);
    let db = redb::Database::create(&path).map_err(|source| Error::Embedded {
        path: path.display().to_string(),
        source: Box::new(source),
    })?;
    Ok(Arc::new(db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_reopens_a_store_in_a_new_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested/data");
        drop(open(&data, "chat.redb").expect("first open"));
        open(&data, "chat.redb").expect("reopen");
        assert!(data.join("chat.redb").exists());
    }
}
