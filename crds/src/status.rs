//! The `status` of a StreamRoom, written by three kinds of field managers with server-side
//! apply, each owning its own fields so none overwrites another:
//!
//! | field manager               | fields                                                    |
//! |-----------------------------|-----------------------------------------------------------|
//! | `roomcast-operator`         | phase, message, urls, observedGeneration, conditions      |
//! | `roomcast-media`            | `media` (live, session, renditions, bitrate, viewers)     |
//! | `roomcast-chat/<pod>`       | its own entry of `chat.replicas` (a list-map keyed by pod) |

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Observed state of a room.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamRoomStatus {
    /// Summary of the room: Pending, Idle, Live, Degraded or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RoomPhase>,
    /// Why the room is in its phase, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RTMP URL a streamer publishes to (the stream key is the stream name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// Master HLS playlist viewers open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    /// socket.io endpoint of the room's chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_url: Option<String>,
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, IngestReady, ChatReady, RecordingReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Live state reported by the media worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaReport>,
    /// Presence reported by the chat replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatReport>,
}

/// Summary phase of a room.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomPhase {
    /// Children applied, workers not ready yet.
    Pending,
    /// Ready, nobody publishing.
    Idle,
    /// A publisher is live.
    Live,
    /// Serving, but a part (chat, recording) is not healthy.
    Degraded,
    /// The spec cannot be run; see the conditions.
    Error,
}

impl RoomPhase {
    pub const ALL: [RoomPhase; 5] = [
        RoomPhase::Pending,
        RoomPhase::Idle,
        RoomPhase::Live,
        RoomPhase::Degraded,
        RoomPhase::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoomPhase::Pending => "Pending",
            RoomPhase::Idle => "Idle",
            RoomPhase::Live => "Live",
            RoomPhase::Degraded => "Degraded",
            RoomPhase::Error => "Error",
        }
    }
}

/// What the media worker knows: written by field manager `roomcast-media`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaReport {
    /// A publisher is live.
    pub live: bool,
    /// Current (or last) session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When the current session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_started_at: Option<Time>,
    /// Ingest bitrate over the last seconds, kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_kbps: Option<u32>,
    /// Distinct players that fetched a playlist in the last 30 s.
    #[serde(default)]
    pub viewers: u32,
    /// Renditions of the current (or last) session that the master playlist lists: the room's
    /// ladder without the rungs dropped for this source (taller than it, or as tall and not
    /// clearly cheaper).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<String>,
    /// False while recording is degraded (spool full, S3 failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_healthy: Option<bool>,
    /// Why recording is degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_message: Option<String>,
    /// When the worker wrote this report; the operator ignores reports older than two minutes.
    pub reported_at: Time,
}

/// Presence from all chat replicas.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChatReport {
    /// One entry per chat replica, each owned by that replica's field manager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub replicas: Vec<ChatReplicaReport>,
}

/// What one chat replica knows: written by field manager `roomcast-chat/<pod>`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatReplicaReport {
    /// Pod name of the replica.
    pub pod: String,
    /// Socket.io connections on this replica.
    pub connections: u32,
    /// When the replica wrote this report.
    pub reported_at: Time,
}
