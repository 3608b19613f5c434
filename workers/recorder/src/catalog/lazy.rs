//! A catalog opened on first use: the media worker starts live-first, so a MongoDB that does
//! not answer at start must not stop it. Every call tries to open the catalog until one
//! succeeds (calls at the same time share one attempt); until then each call fails with the
//! opening error, which the recorder's retrying catalog writes and orphan finalisation turn into
//! backoff and an unhealthy [`crate::Health`].

use std::{future::Future, pin::Pin, sync::Arc};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::{Catalog, DynCatalog, Recording};
use crate::Result;

type Open = dyn Fn() -> Pin<Box<dyn Future<Output = Result<DynCatalog>> + Send>> + Send + Sync;

pub struct LazyCatalog {
    open: Box<Open>,
    catalog: OnceCell<DynCatalog>,
}

impl LazyCatalog {
    /// `open` is called on each use until it succeeds once.
    pub fn new<F, Fut>(open: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DynCatalog>> + Send + 'static,
    {
        Self {
            open: Box::new(move || Box::pin(open())),
            catalog: OnceCell::new(),
        }
    }

    async fn get(&self) -> Result<&DynCatalog> {
        self.catalog.get_or_try_init(|| (self.open)()).await
    }

    /// Whether the catalog has been opened.
    pub fn is_open(&self) -> bool {
        self.catalog.initialized()
    }
}

#[async_trait]
impl Catalog for LazyCatalog {
    async fn upsert(&self, rec: &Recording) -> Result<()> {
        self.get().await?.upsert(rec).await
    }
    async fn get(&self, room: &str, session_id: &str) -> Result<Option<Recording>> {
        LazyCatalog::get(self).await?.get(room, session_id).await
    }
    async fn list(&self, room: &str, limit: u32, before: Option<i64>) -> Result<Vec<Recording>> {
        self.get().await?.list(room, limit, before).await
    }
    async fn ended_before(&self, room: &str, cutoff: i64) -> Result<Vec<Recording>> {
        self.get().await?.ended_before(room, cutoff).await
    }
    async fn delete(&self, room: &str, session_id: &str) -> Result<bool> {
        self.get().await?.delete(room, session_id).await
    }
}

impl From<LazyCatalog> for DynCatalog {
    fn from(c: LazyCatalog) -> Self {
        Arc::new(c)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{Error, RecordingStatus, catalog::embedded::EmbeddedCatalog};

    #[tokio::test]
    async fn a_catalog_that_cannot_open_yet_fails_each_call_then_opens_once_it_can() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        let attempts = Arc::new(AtomicU32::new(0));
        let counted = attempts.clone();
        let lazy = LazyCatalog::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let path = path.clone();
            async move {
                if n < 2 {
                    return Err(Error::Embedded(format!("not reachable yet ({n})")));
                }
                Ok(Arc::new(EmbeddedCatalog::open(&path)?) as DynCatalog)
            }
        });
        let rec = super::super::suite::recording("shows/lobby", "s1", 1, RecordingStatus::Live);
        assert_eq!(
            lazy.upsert(&rec).await.expect_err("down").label(),
            "embedded"
        );
        assert!(lazy.list("shows/lobby", 10, None).await.is_err());
        assert!(!lazy.is_open());
        lazy.upsert(&rec).await.expect("opened on the third try");
        assert!(lazy.is_open());
        assert_eq!(
            Catalog::get(&lazy, "shows/lobby", "s1").await.expect("get"),
            Some(rec)
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 3, "opened once, then kept");
    }
}
