//! MongoDB implementation.
//!
//! - `chat_messages`: `{_id: <message id>, room, userId, name, role, text, ts: Date,
//!   expireAt?: Date}`; indexes `{room: 1, _id: -1}` (history) and a TTL index on `expireAt`
//!   (`expireAfterSeconds: 0`, so each message carries its room's retention).
//! - `chat_bans`: `{_id: "<room>|<userId>", room, userId, by, reason?, at: Date}`; index `{room: 1}`.
//! - `chat_rooms`: `{_id: <room>, slowModeSeconds}`.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{DateTime, Document, doc},
    options::IndexOptions,
};
use serde::{Deserialize, Serialize};

use super::{Ban, ChatStore, Recent, RoomKey};
use crate::{
    Result, history,
    protocol::{ChatMessage, Role},
};

pub const MESSAGES: &str = "chat_messages";
pub const BANS: &str = "chat_bans";
pub const ROOMS: &str = "chat_rooms";
/// Messages per cursor batch of a history read (at most 16 × 60 KB read past the byte cap).
const HISTORY_BATCH: u32 = 16;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageDoc {
    #[serde(rename = "_id")]
    id: String,
    room: String,
    user_id: String,
    name: String,
    role: Role,
    text: String,
    ts: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expire_at: Option<DateTime>,
}

impl From<MessageDoc> for ChatMessage {
    fn from(d: MessageDoc) -> Self {
        ChatMessage {
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            role: d.role,
            text: d.text,
            ts: d.ts.timestamp_millis(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BanDoc {
    #[serde(rename = "_id")]
    id: String,
    room: String,
    user_id: String,
    by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: DateTime,
}

#[derive(Clone)]
pub struct MongoChatStore {
    messages: Collection<MessageDoc>,
    bans: Collection<BanDoc>,
    rooms: Collection<Document>,
}

fn ban_id(room: &RoomKey, user_id: &str) -> String {
    format!("{}|{user_id}", room.as_str())
}

impl MongoChatStore {
    /// Use `db` and create the indexes (idempotent).
    pub async fn open(db: &Database) -> Result<Self> {
        let store = Self {
            messages: db.collection(MESSAGES),
            bans: db.collection(BANS),
            rooms: db.collection(ROOMS),
        };
        store
            .messages
            .create_indexes([
                IndexModel::builder()
                    .keys(doc! {"room": 1, "_id": -1})
                    .options(
                        IndexOptions::builder()
                            .name("room_history".to_owned())
                            .build(),
                    )
                    .build(),
                IndexModel::builder()
                    .keys(doc! {"expireAt": 1})
                    .options(
                        IndexOptions::builder()
                            .name("retention_ttl".to_owned())
                            .expire_after(std::time::Duration::ZERO)
                            .build(),
                    )
                    .build(),
            ])
            .await?;
        store
            .bans
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"room": 1})
                    .options(IndexOptions::builder().name("room_bans".to_owned()).build())
                    .build(),
            )
            .await?;
        Ok(store)
    }
}

#[async_trait]
impl ChatStore for MongoChatStore {
    async fn append(
        &self,
        room: &RoomKey,
        msg: &ChatMessage,
        expire_at: Option<i64>,
    ) -> Result<()> {
        self.messages
            .insert_one(MessageDoc {
                id: msg.id.clone(),
                room: room.as_str().to_owned(),
                user_id: msg.user_id.clone(),
                name: msg.name.clone(),
                role: msg.role,
                text: msg.text.clone(),
                ts: DateTime::from_millis(msg.ts),
                expire_at: expire_at.map(DateTime::from_millis),
            })
            .await?;
        Ok(())
    }

    async fn recent(
        &self,
        room: &RoomKey,
        limit: u32,
        max_bytes: usize,
        now: i64,
    ) -> Result<Recent> {
        if limit == 0 {
            return Ok(Recent::default());
        }
        // The TTL monitor runs about once a minute, so expired messages are filtered here too.
        let filter = doc! {
            "room": room.as_str(),
            "$or": [
                {"expireAt": {"$exists": false}},
                {"expireAt": {"$gt": DateTime::from_millis(now)}},
            ],
        };
        // Small batches, read newest first until the byte cap: a room of long messages is not
        // pulled whole from the server for every join.
        let mut cursor = self
            .messages
            .find(filter)
            .sort(doc! {"_id": -1})
            .limit(i64::from(limit))
            .batch_size(HISTORY_BATCH)
            .await?;
        let mut budget = history::Budget::new(max_bytes);
        let mut newest_first = Vec::new();
        let mut cut = false;
        while let Some(doc) = cursor.try_next().await? {
            let msg = ChatMessage::from(doc);
            if !budget.take(&msg) {
                cut = true;
                break;
            }
            newest_first.push(msg);
        }
        newest_first.reverse();
        Ok(Recent {
            messages: newest_first,
            cut,
        })
    }

    async fn delete(&self, room: &RoomKey, id: &str) -> Result<bool> {
        let res = self
            .messages
            .delete_one(doc! {"_id": id, "room": room.as_str()})
            .await?;
        Ok(res.deleted_count > 0)
    }

    async fn ban(&self, room: &RoomKey, ban: &Ban) -> Result<()> {
        let id = ban_id(room, &ban.user_id);
        self.bans
            .replace_one(
                doc! {"_id": &id},
                BanDoc {
                    id: id.clone(),
                    room: room.as_str().to_owned(),
                    user_id: ban.user_id.clone(),
                    by: ban.by.clone(),
                    reason: ban.reason.clone(),
                    at: DateTime::from_millis(ban.at),
                },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn unban(&self, room: &RoomKey, user_id: &str) -> Result<bool> {
        let res = self
            .bans
            .delete_one(doc! {"_id": ban_id(room, user_id)})
            .await?;
        Ok(res.deleted_count > 0)
    }

    async fn is_banned(&self, room: &RoomKey, user_id: &str) -> Result<bool> {
        Ok(self
            .bans
            .find_one(doc! {"_id": ban_id(room, user_id)})
            .await?
            .is_some())
    }

    async fn slow_mode(&self, room: &RoomKey) -> Result<u32> {
        let doc = self.rooms.find_one(doc! {"_id": room.as_str()}).await?;
        let seconds = doc
            .and_then(|d| match d.get("slowModeSeconds") {
                Some(mongodb::bson::Bson::Int32(s)) => u32::try_from(*s).ok(),
                Some(mongodb::bson::Bson::Int64(s)) => u32::try_from(*s).ok(),
                _ => None,
            })
            .unwrap_or(0);
        Ok(seconds)
    }

    async fn set_slow_mode(&self, room: &RoomKey, seconds: u32) -> Result<()> {
        self.rooms
            .update_one(
                doc! {"_id": room.as_str()},
                doc! {"$set": {"slowModeSeconds": i64::from(seconds)}},
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn purge_expired(&self, _now: i64) -> Result<u64> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_store::{mongo, test_support};

    #[tokio::test]
    async fn mongo_store_passes_the_shared_suite() {
        let Some((uri, _server)) = test_support::mongo_for_tests()
            .await
            .expect("a MongoDB-compatible test server (secantusd-py) or ROOMCAST_TEST_MONGODB_URI")
        else {
            return;
        };
        let db = mongo::connect(&uri, "roomcast-chat-test")
            .await
            .expect("connect");
        let store = MongoChatStore::open(&db).await.expect("open");
        crate::store::suite::run(&store).await;
    }

    #[tokio::test]
    async fn mongo_store_keeps_history_and_bans_across_reconnect_and_creates_indexes() {
        let Some((uri, _server)) = test_support::mongo_for_tests().await.expect("test server")
        else {
            return;
        };
        let db = mongo::connect(&uri, "roomcast-chat-test")
            .await
            .expect("connect");
        crate::store::suite::write_for_restart(&MongoChatStore::open(&db).await.expect("open"))
            .await;
        let db = mongo::connect(&uri, "roomcast-chat-test")
            .await
            .expect("reconnect");
        let store = MongoChatStore::open(&db).await.expect("reopen");
        crate::store::suite::check_after_restart(&store).await;
        let names = db
            .collection::<Document>(MESSAGES)
            .list_index_names()
            .await
            .expect("indexes");
        assert!(names.iter().any(|n| n == "retention_ttl"), "{names:?}");
        assert!(names.iter().any(|n| n == "room_history"), "{names:?}");
    }
}
