//! redb implementation. Keys are `<room>\0<id>` so one room's messages form a contiguous,
//! time-ordered range; values are JSON.

use std::{
    path::Path,
    sync::{Arc, mpsc},
    thread::JoinHandle,
};

use async_trait::async_trait;
use redb::TableDefinition;
use roomcast_store::embedded::{
    EmbeddedError, JsonTable, blocking, read, room_key, room_range, write,
};
use serde::{Deserialize, Serialize};

use super::{Ban, ChatStore, Recent, RoomKey};
use crate::{Error, Result, history, protocol::ChatMessage};

const MESSAGES: JsonTable = TableDefinition::new("chat_messages");
const BANS: JsonTable = TableDefinition::new("chat_bans");
const ROOMS: JsonTable = TableDefinition::new("chat_rooms");

/// File name under the data directory.
pub const FILE_NAME: &str = "chat.redb";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMessage {
    #[serde(flatten)]
    msg: ChatMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expire_at: Option<i64>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RoomSettings {
    slow_mode_seconds: u32,
}

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;

/// A message waiting for the writer thread.
struct Append {
    key: String,
    value: Vec<u8>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Messages are appended by one writer thread with group commit: every message waiting when
/// a transaction starts goes into it, so one fsync covers a burst instead of one each.
pub struct EmbeddedChatStore {
    db: Arc<redb::Database>,
    appends: Option<mpsc::Sender<Append>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for EmbeddedChatStore {
    /// Stop the writer after it has committed what it holds, so the file can be reopened.
    fn drop(&mut self) {
        self.appends.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn writer_loop(db: Arc<redb::Database>, appends: mpsc::Receiver<Append>) {
    while let Ok(first) = appends.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match appends.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let result = write(&db, MESSAGES, |t| -> Result<()> {
            for a in &batch {
                t.insert(a.key.as_str(), a.value.as_slice())
                    .map_err(Error::embedded)?;
            }
            Ok(())
        });
        let result = result.map_err(|e| e.to_string());
        for a in batch {
            let _ = a.done.send(result.clone().map_err(Error::Embedded));
        }
    }
}

impl EmbeddedError for Error {
    fn from_redb(e: impl std::fmt::Display) -> Self {
        Error::embedded(e)
    }
}

fn key(room: &RoomKey, id: &str) -> String {
    room_key(room.as_str(), id)
}

impl EmbeddedChatStore {
    /// Open `<data_dir>/chat.redb` and create the tables.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let db = roomcast_store::embedded::open(data_dir, FILE_NAME, &[MESSAGES, BANS, ROOMS])?;
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("chat-store-writer".into())
            .spawn(move || writer_loop(writer_db, rx))
            .map_err(Error::embedded)?;
        Ok(Self {
            db,
            appends: Some(tx),
            writer: Some(writer),
        })
    }
}

#[async_trait]
impl ChatStore for EmbeddedChatStore {
    async fn append(
        &self,
        room: &RoomKey,
        msg: &ChatMessage,
        expire_at: Option<i64>,
    ) -> Result<()> {
        let k = key(room, &msg.id);
        let v = serde_json::to_vec(&StoredMessage {
            msg: msg.clone(),
            expire_at,
        })?;
        blocking(&self.db, move |db| {
            write(db, MESSAGES, |t| {
                t.insert(k.as_str(), v.as_slice())
                    .map_err(Error::embedded)?;
                Ok(())
            })
        })
        .await
    }

    async fn recent(
        &self,
        room: &RoomKey,
        limit: u32,
        max_bytes: usize,
        now: i64,
    ) -> Result<Recent> {
        let (from, to) = room_range(room.as_str());
        blocking(&self.db, move |db| {
            read(db, MESSAGES, |t| {
                let newest_first = t
                    .range(from.as_str()..to.as_str())
                    .map_err(Error::embedded)?
                    .rev()
                    .map(|entry| -> Result<Option<ChatMessage>> {
                        let (_, v) = entry.map_err(Error::embedded)?;
                        let stored: StoredMessage = serde_json::from_slice(v.value())?;
                        Ok(stored
                            .expire_at
                            .is_none_or(|e| e > now)
                            .then_some(stored.msg))
                    })
                    .filter_map(Result::transpose);
                history::collect(newest_first, limit, max_bytes)
            })
        })
        .await
    }

    async fn delete(&self, room: &RoomKey, id: &str) -> Result<bool> {
        let k = key(room, id);
        blocking(&self.db, move |db| {
            write(db, MESSAGES, |t| {
                Ok(t.remove(k.as_str()).map_err(Error::embedded)?.is_some())
            })
        })
        .await
    }

    async fn ban(&self, room: &RoomKey, ban: &Ban) -> Result<()> {
        let k = key(room, &ban.user_id);
        let v = serde_json::to_vec(ban)?;
        blocking(&self.db, move |db| {
            write(db, BANS, |t| {
                t.insert(k.as_str(), v.as_slice())
                    .map_err(Error::embedded)?;
                Ok(())
            })
        })
        .await
    }

    async fn unban(&self, room: &RoomKey, user_id: &str) -> Result<bool> {
        let k = key(room, user_id);
        blocking(&self.db, move |db| {
            write(db, BANS, |t| {
                Ok(t.remove(k.as_str()).map_err(Error::embedded)?.is_some())
            })
        })
        .await
    }

    async fn is_banned(&self, room: &RoomKey, user_id: &str) -> Result<bool> {
        let k = key(room, user_id);
        blocking(&self.db, move |db| {
            read(db, BANS, |t| {
                Ok(t.get(k.as_str()).map_err(Error::embedded)?.is_some())
            })
        })
        .await
    }

    async fn slow_mode(&self, room: &RoomKey) -> Result<u32> {
        let k = room.as_str().to_owned();
        blocking(&self.db, move |db| {
            read(db, ROOMS, |t| {
                let settings: RoomSettings = match t.get(k.as_str()).map_err(Error::embedded)? {
                    Some(v) => serde_json::from_slice(v.value())?,
                    None => RoomSettings::default(),
                };
                Ok(settings.slow_mode_seconds)
            })
        })
        .await
    }

    async fn set_slow_mode(&self, room: &RoomKey, seconds: u32) -> Result<()> {
        let k = room.as_str().to_owned();
        let v = serde_json::to_vec(&RoomSettings {
            slow_mode_seconds: seconds,
        })?;
        blocking(&self.db, move |db| {
            write(db, ROOMS, |t| {
                t.insert(k.as_str(), v.as_slice())
                    .map_err(Error::embedded)?;
                Ok(())
            })
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        blocking(&self.db, move |db| {
            write(db, MESSAGES, |t| {
                let mut removed = 0u64;
                t.retain(|_, v| {
                    let expired = serde_json::from_slice::<StoredMessage>(v)
                        .ok()
                        .and_then(|s| s.expire_at)
                        .is_some_and(|e| e <= now);
                    removed += u64::from(expired);
                    !expired
                })
                .map_err(Error::embedded)?;
                Ok(removed)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_store_passes_the_shared_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedChatStore::open(dir.path()).expect("open");
        crate::store::suite::run(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_all_committed_in_order_of_their_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedChatStore::open(dir.path()).expect("open"));
        let room = RoomKey::new("ns", "burst");
        let tasks: Vec<_> = (0..200i64)
            .map(|i| {
                let store = store.clone();
                let room = room.clone();
                tokio::spawn(async move {
                    let msg = ChatMessage {
                        id: format!("{i:06}"),
                        user_id: "u".into(),
                        name: "n".into(),
                        role: crate::protocol::Role::Viewer,
                        text: format!("m{i}"),
                        ts: i,
                    };
                    store.append(&room, &msg, None).await
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("append");
        }
        let got = store
            .recent(&room, 500, usize::MAX, 0)
            .await
            .expect("recent")
            .messages;
        assert_eq!(got.len(), 200);
        assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[tokio::test]
    async fn embedded_store_keeps_history_and_bans_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::store::suite::write_for_restart(&EmbeddedChatStore::open(dir.path()).expect("open"))
            .await;
        crate::store::suite::check_after_restart(
            &EmbeddedChatStore::open(dir.path()).expect("reopen"),
        )
        .await;
    }
}
