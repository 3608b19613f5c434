//! Where recordings live, behind one trait: [`s3::S3Store`] (AWS S3 or any S3-compatible store)
//! and [`local::LocalStore`] (a directory with the same key layout, for `roomcast dev`). The
//! shared suite in `suite.rs` runs against both.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Error, Result};

pub mod local;
pub mod s3;
#[cfg(test)]
pub(crate) mod suite;

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `body` under `key`, replacing what was there (uploads are idempotent).
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()>;
    /// The object, or `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Every key starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Delete every key starting with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;
    /// For logs: `s3://bucket` or `file:///dir`.
    fn describe(&self) -> String;
}

pub type DynStore = Arc<dyn ObjectStore>;

/// Keys are relative paths of safe components: no empty, `.` or `..` component, no leading `/`.
pub fn check_key(key: &str) -> Result<&str> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']));
    if ok {
        Ok(key)
    } else {
        Err(Error::Key(key.to_owned()))
    }
}

/// The content type for a recording object, from its extension.
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("ts") => "video/mp2t",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("json") => "application/json",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_climb_out_of_the_store() {
        for bad in ["", "/abs", "a/../b", "a//b", "a/./b", "a/", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key("rooms/shows/lobby/s1/720p/0.ts").is_ok());
        assert_eq!(
            content_type("a/index.m3u8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type("a/1.ts"), "video/mp2t");
        // CMAF recordings: what a CDN serving the bucket passes on to players.
        assert_eq!(content_type("a/init-1.mp4"), "video/mp4");
        assert_eq!(content_type("a/12.m4s"), "video/iso.segment");
    }
}
