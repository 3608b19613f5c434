//! The catalog of recorded sessions ("past broadcasts") behind one trait:
//! [`mongo::MongoCatalog`] (collection `recordings`) and [`embedded::EmbeddedCatalog`] (a redb
//! table of the same name). The shared suite in `suite.rs` runs against both. [`lazy::LazyCatalog`]
//! opens either on first use, for a worker that starts before its MongoDB answers.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

pub mod embedded;
pub mod lazy;
pub mod mongo;
#[cfg(test)]
pub(crate) mod suite;

/// Page size of [`Catalog::list`] when none is asked for, and the largest allowed.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Still being recorded.
    Live,
    /// Ended cleanly; every accepted segment is stored.
    Complete,
    /// The worker stopped mid-session (crash, kill); finalised from the spool on restart.
    Interrupted,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Live => "live",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Interrupted => "interrupted",
        }
    }
}

/// One recorded session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// `namespace/name`.
    pub room: String,
    pub session_id: String,
    /// Unix ms.
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    pub status: RecordingStatus,
    pub renditions: Vec<String>,
    /// Key prefix of the session's objects: `<prefix><namespace>/<room>/<session-id>/`.
    pub prefix: String,
    /// Key of the poster image, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub segments: u64,
    #[serde(default)]
    pub dropped_segments: u64,
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Insert or replace the entry for `(room, session_id)`.
    async fn upsert(&self, rec: &Recording) -> Result<()>;
    async fn get(&self, room: &str, session_id: &str) -> Result<Option<Recording>>;
    /// A room's sessions, newest first (by start); only those started before `before` (Unix ms)
    /// when given; at most `limit` (clamped to 1..=[`MAX_PAGE`]).
    async fn list(&self, room: &str, limit: u32, before: Option<i64>) -> Result<Vec<Recording>>;
    /// A room's finished sessions (not `live`) that ended before `cutoff` (Unix ms).
    async fn ended_before(&self, room: &str, cutoff: i64) -> Result<Vec<Recording>>;
    /// False when there was no such entry.
    async fn delete(&self, room: &str, session_id: &str) -> Result<bool>;
}

pub type DynCatalog = Arc<dyn Catalog>;

pub(crate) fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}
