//! MongoDB implementation, collection `recordings`:
//! `{_id: "<room>|<session-id>", room, sessionId, startedAt: Date, endedAt?: Date,
//! durationSeconds?, status, renditions, prefix, poster?, bytes, segments, droppedSegments}`.
//! Indexes (created at start, idempotent): `{room: 1, startedAt: -1}` (listing, newest first)
//! and `{room: 1, endedAt: 1}` (retention).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{DateTime, doc},
    options::IndexOptions,
};
use serde::{Deserialize, Serialize};

use super::{Catalog, Recording, RecordingStatus, clamp_limit};
use crate::Result;

pub const COLLECTION: &str = "recordings";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordingDoc {
    #[serde(rename = "_id")]
    id: String,
    room: String,
    session_id: String,
    started_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<f64>,
    status: RecordingStatus,
    renditions: Vec<String>,
    prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poster: Option<String>,
    #[serde(default)]
    bytes: i64,
    #[serde(default)]
    segments: i64,
    #[serde(default)]
    dropped_segments: i64,
}

fn doc_id(room: &str, session_id: &str) -> String {
    format!("{room}|{session_id}")
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<&Recording> for RecordingDoc {
    fn from(r: &Recording) -> Self {
        RecordingDoc {
            id: doc_id(&r.room, &r.session_id),
            room: r.room.clone(),
            session_id: r.session_id.clone(),
            started_at: DateTime::from_millis(r.started_at),
            ended_at: r.ended_at.map(DateTime::from_millis),
            duration_seconds: r.duration_seconds,
            status: r.status,
            renditions: r.renditions.clone(),
            prefix: r.prefix.clone(),
            poster: r.poster.clone(),
            bytes: to_i64(r.bytes),
            segments: to_i64(r.segments),
            dropped_segments: to_i64(r.dropped_segments),
        }
    }
}

impl From<RecordingDoc> for Recording {
    fn from(d: RecordingDoc) -> Self {
        Recording {
            room: d.room,
            session_id: d.session_id,
            started_at: d.started_at.timestamp_millis(),
            ended_at: d.ended_at.map(|t| t.timestamp_millis()),
            duration_seconds: d.duration_seconds,
            status: d.status,
            renditions: d.renditions,
            prefix: d.prefix,
            poster: d.poster,
            bytes: u64::try_from(d.bytes).unwrap_or(0),
            segments: u64::try_from(d.segments).unwrap_or(0),
            dropped_segments: u64::try_from(d.dropped_segments).unwrap_or(0),
        }
    }
}

#[derive(Clone)]
pub struct MongoCatalog {
    recordings: Collection<RecordingDoc>,
}

impl MongoCatalog {
    /// Use `db` and create the indexes (idempotent).
    pub async fn open(db: &Database) -> Result<Self> {
        let recordings = db.collection(COLLECTION);
        recordings
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! {"room": 1, "startedAt": -1})
                    .options(
                        IndexOptions::builder()
                            .name("room_newest".to_owned())
                            .build(),
                    )
                    .build(),
                IndexModel::builder()
                    .keys(doc! {"room": 1, "endedAt": 1})
                    .options(
                        IndexOptions::builder()
                            .name("room_retention".to_owned())
                            .build(),
                    )
                    .build(),
            ])
            .await?;
        Ok(Self { recordings })
    }
}

#[async_trait]
impl Catalog for MongoCatalog {
    async fn upsert(&self, rec: &Recording) -> Result<()> {
        let doc = RecordingDoc::from(rec);
        self.recordings
            .replace_one(doc! {"_id": &doc.id}, &doc)
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn get(&self, room: &str, session_id: &str) -> Result<Option<Recording>> {
        Ok(self
            .recordings
            .find_one(doc! {"_id": doc_id(room, session_id)})
            .await?
            .map(Recording::from))
    }

    async fn list(&self, room: &str, limit: u32, before: Option<i64>) -> Result<Vec<Recording>> {
        let mut filter = doc! {"room": room};
        if let Some(b) = before {
            filter.insert("startedAt", doc! {"$lt": DateTime::from_millis(b)});
        }
        let docs: Vec<RecordingDoc> = self
            .recordings
            .find(filter)
            .sort(doc! {"startedAt": -1, "sessionId": -1})
            .limit(i64::from(clamp_limit(limit)))
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(Recording::from).collect())
    }

    async fn ended_before(&self, room: &str, cutoff: i64) -> Result<Vec<Recording>> {
        let docs: Vec<RecordingDoc> = self
            .recordings
            .find(doc! {
                "room": room,
                "status": {"$ne": RecordingStatus::Live.as_str()},
                "endedAt": {"$lt": DateTime::from_millis(cutoff)},
            })
            .await?
            .try_collect()
            .await?;
        Ok(docs.into_iter().map(Recording::from).collect())
    }

    async fn delete(&self, room: &str, session_id: &str) -> Result<bool> {
        let res = self
            .recordings
            .delete_one(doc! {"_id": doc_id(room, session_id)})
            .await?;
        Ok(res.deleted_count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_store::{mongo, test_support};

    #[tokio::test]
    async fn mongo_catalog_passes_the_shared_suite_and_creates_indexes() {
        let Some((uri, _server)) = test_support::mongo_for_tests()
            .await
            .expect("a MongoDB-compatible test server (secantusd-py) or ROOMCAST_TEST_MONGODB_URI")
        else {
            return;
        };
        let db = mongo::connect(&uri, "roomcast-recorder-test")
            .await
            .expect("connect");
        let catalog = MongoCatalog::open(&db).await.expect("open");
        super::super::suite::run(&catalog).await;
        // Opening again is fine (indexes exist already) and the indexes are there.
        let catalog = MongoCatalog::open(&db).await.expect("reopen");
        let names = catalog
            .recordings
            .list_index_names()
            .await
            .expect("indexes");
        assert!(names.iter().any(|n| n == "room_newest"), "{names:?}");
        assert!(names.iter().any(|n| n == "room_retention"), "{names:?}");
    }
}
