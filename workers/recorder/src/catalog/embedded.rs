//! redb implementation: table `recordings`, key `<room>\0<session-id>`, JSON values. Listing
//! reads one room's range and sorts in memory (a room has thousands of sessions at most).

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use redb::TableDefinition;
use roomcast_store::embedded::{JsonTable, blocking, read, room_key, room_range, write};

use super::{Catalog, Recording, RecordingStatus, clamp_limit};
use crate::{Error, Result};

const RECORDINGS: JsonTable = TableDefinition::new("recordings");
/// File name under the data directory.
pub const FILE_NAME: &str = "recordings.redb";

#[derive(Clone)]
pub struct EmbeddedCatalog {
    db: Arc<redb::Database>,
}

impl EmbeddedCatalog {
    /// Open `<data_dir>/recordings.redb` and create the table.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let db = roomcast_store::embedded::open(data_dir, FILE_NAME, &[RECORDINGS])?;
        Ok(Self { db })
    }

    /// Every entry of a room.
    async fn room(&self, room: &str) -> Result<Vec<Recording>> {
        let (from, to) = room_range(room);
        blocking(&self.db, move |db| {
            read(db, RECORDINGS, |t| {
                let mut out = Vec::new();
                for entry in t
                    .range(from.as_str()..to.as_str())
                    .map_err(Error::embedded)?
                {
                    let (_, v) = entry.map_err(Error::embedded)?;
                    out.push(serde_json::from_slice(v.value())?);
                }
                Ok(out)
            })
        })
        .await
    }
}

#[async_trait]
impl Catalog for EmbeddedCatalog {
    async fn upsert(&self, rec: &Recording) -> Result<()> {
        let k = room_key(&rec.room, &rec.session_id);
        let v = serde_json::to_vec(rec)?;
        blocking(&self.db, move |db| {
            write(db, RECORDINGS, |t| {
                t.insert(k.as_str(), v.as_slice())
                    .map_err(Error::embedded)?;
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, room: &str, session_id: &str) -> Result<Option<Recording>> {
        let k = room_key(room, session_id);
        blocking(&self.db, move |db| {
            read(db, RECORDINGS, |t| {
                match t.get(k.as_str()).map_err(Error::embedded)? {
                    Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn list(&self, room: &str, limit: u32, before: Option<i64>) -> Result<Vec<Recording>> {
        let mut all: Vec<Recording> = self
            .room(room)
            .await?
            .into_iter()
            .filter(|r| before.is_none_or(|b| r.started_at < b))
            .collect();
        all.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.session_id.cmp(&a.session_id))
        });
        all.truncate(clamp_limit(limit) as usize);
        Ok(all)
    }

    async fn ended_before(&self, room: &str, cutoff: i64) -> Result<Vec<Recording>> {
        Ok(self
            .room(room)
            .await?
            .into_iter()
            .filter(|r| r.status != RecordingStatus::Live && r.ended_at.is_some_and(|e| e < cutoff))
            .collect())
    }

    async fn delete(&self, room: &str, session_id: &str) -> Result<bool> {
        let k = room_key(room, session_id);
        blocking(&self.db, move |db| {
            write(db, RECORDINGS, |t| {
                Ok(t.remove(k.as_str()).map_err(Error::embedded)?.is_some())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_catalog_passes_the_shared_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog = EmbeddedCatalog::open(dir.path()).expect("open");
        super::super::suite::run(&catalog).await;
    }

    #[tokio::test]
    async fn embedded_catalog_keeps_entries_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rec =
            super::super::suite::recording("shows/keep", "s1", 1_000, RecordingStatus::Complete);
        EmbeddedCatalog::open(dir.path())
            .expect("open")
            .upsert(&rec)
            .await
            .expect("upsert");
        let got = EmbeddedCatalog::open(dir.path())
            .expect("reopen")
            .get("shows/keep", "s1")
            .await
            .expect("get");
        assert_eq!(got, Some(rec));
    }
}
