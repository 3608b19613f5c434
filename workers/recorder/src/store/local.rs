//! A directory with the S3 key layout (`<root>/<key>`), for `roomcast dev` and rooms without S3.
//! Writes go to a temporary file renamed into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectStore, check_key};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

fn local_err(path: &Path, source: std::io::Error) -> Error {
    Error::Local {
        path: path.display().to_string(),
        source,
    }
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| local_err(&root, e))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        Ok(self.root.join(check_key(key)?))
    }
}

/// Every file under `dir`, as keys relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let key = rel.to_string_lossy().replace('\\', "/");
            if !key.rsplit('/').next().unwrap_or("").starts_with(".tmp-") {
                out.push(key);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{name}-{:08x}", rand_suffix()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| local_err(&dir, e))?;
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| local_err(&tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| local_err(&path, e))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A "file" that is a directory is not an object.
            Err(_) if path.is_dir() => Ok(None),
            Err(e) => Err(local_err(&path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.root.clone();
        // Walk only the deepest directory the prefix names.
        let dir = match prefix.rfind('/') {
            Some(i) => root.join(check_key(&prefix[..i])?),
            None => root.clone(),
        };
        let prefix = prefix.to_owned();
        let keys = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &dir, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| local_err(&self.root, std::io::Error::other(e)))?
        .map_err(|e| local_err(&self.root, e))?;
        let mut keys: Vec<String> = keys
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let keys = self.list(prefix).await?;
        let mut dirs = std::collections::BTreeSet::new();
        for key in &keys {
            let path = self.path(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_err(&path, e)),
            }
            let mut p = path.parent();
            while let Some(d) = p {
                if d == self.root {
                    break;
                }
                dirs.insert(d.to_owned());
                p = d.parent();
            }
        }
        // Deepest first; only empty directories go.
        for d in dirs.iter().rev() {
            let _ = tokio::fs::remove_dir(d).await;
        }
        Ok(keys.len() as u64)
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed) ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_passes_the_shared_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("recordings")).expect("store");
        super::super::suite::run(&store).await;
    }
}
