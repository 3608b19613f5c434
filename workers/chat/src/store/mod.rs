//! Chat storage behind one trait: [`mongo::MongoChatStore`] (collections `chat_messages`,
//! `chat_bans`, `chat_rooms`) and [`embedded::EmbeddedChatStore`] (redb tables of the same
//! names). The shared suite in `suite.rs` runs against both.

use std::sync::{
    Arc,
    atomic::{AtomicU16, Ordering},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::history::Recent;
use crate::{Result, protocol::ChatMessage};

pub mod embedded;
pub mod mongo;
#[cfg(test)]
mod suite;

/// A room's key in the store: `<namespace>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomKey(String);

impl RoomKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self(format!("{namespace}/{name}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A persisted ban.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ban {
    pub user_id: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
    /// Persist a message; `expire_at` (Unix ms) is when retention removes it.
    async fn append(&self, room: &RoomKey, msg: &ChatMessage, expire_at: Option<i64>)
    -> Result<()>;
    /// The last `limit` messages not deleted nor expired at `now` (Unix ms), oldest first, cut
    /// to the newest whose JSON fits in `max_bytes` ([`crate::history::collect`]: reading stops
    /// at the first message that does not fit).
    async fn recent(
        &self,
        room: &RoomKey,
        limit: u32,
        max_bytes: usize,
        now: i64,
    ) -> Result<Recent>;
    /// Remove a message; false when there was none with that id.
    async fn delete(&self, room: &RoomKey, id: &str) -> Result<bool>;
    async fn ban(&self, room: &RoomKey, ban: &Ban) -> Result<()>;
    /// Lift a ban; false when the user was not banned.
    async fn unban(&self, room: &RoomKey, user_id: &str) -> Result<bool>;
    async fn is_banned(&self, room: &RoomKey, user_id: &str) -> Result<bool>;
    /// Slow mode interval in seconds (0: off).
    async fn slow_mode(&self, room: &RoomKey) -> Result<u32>;
    async fn set_slow_mode(&self, room: &RoomKey, seconds: u32) -> Result<()>;
    /// Drop expired messages; returns how many. MongoDB's TTL index does this by itself.
    async fn purge_expired(&self, now: i64) -> Result<u64>;
}

pub type DynStore = Arc<dyn ChatStore>;

static SEQ: AtomicU16 = AtomicU16::new(0);

/// A message id that sorts by time: 12 hex digits of Unix ms, a per-process sequence, and
/// random bits so replicas never collide.
pub fn new_message_id(now_ms: i64) -> String {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let rand: u32 = rand::random();
    format!("{:012x}{seq:04x}{rand:08x}", now_ms.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_time_and_are_unique() {
        let a = new_message_id(1_700_000_000_000);
        let b = new_message_id(1_700_000_000_001);
        assert!(a < b);
        assert_ne!(new_message_id(5), new_message_id(5));
        assert_eq!(a.len(), 24);
    }
}
