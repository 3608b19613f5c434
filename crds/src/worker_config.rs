//! The configuration a worker runs with. In Kubernetes the operator writes it into the room's
//! ConfigMap (key [`CONFIG_KEY`], mounted at [`CONFIG_DIR`]); `roomcast dev` builds the same
//! value from a room file. Secrets never appear in it: it names the files they are mounted at.

use serde::{Deserialize, Serialize};

pub use crate::identity::RoomIdentity;
use crate::{ChatSpec, TranscodeSpec};

/// Key of the worker configuration inside the room's ConfigMap.
pub const CONFIG_KEY: &str = "room.yaml";
/// Where the ConfigMap is mounted in worker pods.
pub const CONFIG_DIR: &str = "/etc/roomcast/config";
/// Where the room's key Secret is mounted (stream key, chat signing key).
pub const KEYS_DIR: &str = "/etc/roomcast/keys";
/// Where a user-provided stream key Secret is mounted.
pub const STREAM_KEY_DIR: &str = "/etc/roomcast/stream-key";
/// Where S3 credentials are mounted (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
pub const S3_CREDENTIALS_DIR: &str = "/etc/roomcast/s3";
/// Where the CDN origin secret is mounted.
pub const ORIGIN_SECRET_DIR: &str = "/etc/roomcast/origin";
/// Where the MongoDB connection Secret is mounted (key `uri`).
pub const MONGODB_DIR: &str = "/etc/roomcast/mongodb";
/// Where the Redis URL Secret is mounted in chat pods (key [`REDIS_URL_KEY`]).
pub const REDIS_DIR: &str = "/etc/roomcast/redis";
/// The recording spool (an emptyDir with a size limit).
pub const SPOOL_DIR: &str = "/var/spool/roomcast";

/// Key names inside the room's `<room>-keys` Secret.
pub const STREAM_KEY_KEY: &str = "stream-key";
pub const CHAT_SIGNING_KEY_KEY: &str = "chat-signing-key";
/// Key of the CDN origin secret inside `spec.playback.cdn.originSecretRef`.
pub const ORIGIN_SECRET_KEY: &str = "origin-secret";
/// Key of the MongoDB URI inside a MongoDB Secret (the platform's or the room's).
pub const MONGODB_URI_KEY: &str = "uri";
/// Key of the Redis URL inside a Redis Secret (the platform's or the room's).
pub const REDIS_URL_KEY: &str = "url";

/// Ports the workers listen on.
pub const RTMP_PORT: u16 = 1935;
pub const HTTP_PORT: u16 = 8080;
pub const METRICS_PORT: u16 = 9090;

/// Everything a media or chat worker needs to serve one room.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerConfig {
    pub room: RoomIdentity,
    pub ingest: IngestConfig,
    pub transcode: TranscodeSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatConfig>,
    pub playback: PlaybackConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb_uri_file: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestConfig {
    /// File holding the stream key (the RTMP stream name a publisher must use).
    pub stream_key_file: String,
    pub max_bitrate_kbps: u32,
    pub reconnect_grace_seconds: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingConfig {
    pub bucket: String,
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    pub force_path_style: bool,
    /// Directory with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` files; unset uses the
    /// ambient AWS credential chain (pod identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
    /// Renditions to record; empty records all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    pub spool_dir: String,
    pub spool_size_mib: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatConfig {
    #[serde(flatten)]
    pub spec: ChatSpec,
    /// File holding the HMAC key chat tokens are signed with.
    pub signing_key_file: String,
    /// File holding the Redis URL for the socket.io adapter when the room has several
    /// replicas (a URL may carry a password, so it is mounted from a Secret, never written
    /// here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url_file: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackConfig {
    /// Path prefix the Ingress routes to this room, e.g. `/shows/lobby`.
    pub path_prefix: String,
    pub playlist_max_age_seconds: u32,
    pub segment_max_age_seconds: u32,
    /// File holding the CDN origin secret; requests without it get 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_secret_file: Option<String>,
    /// `spec.playback.latency`. Defaults are left out of the YAML, so a standard room's
    /// ConfigMap (and its config hash) stays what it was before low latency existed and an
    /// operator upgrade restarts no media pod.
    #[serde(default, skip_serializing_if = "is_standard")]
    pub latency: crate::Latency,
    /// `spec.playback.partTargetMs`.
    #[serde(
        default = "crate::defaults::part_target_ms",
        skip_serializing_if = "is_default_part_target"
    )]
    pub part_target_ms: u32,
}

fn is_standard(latency: &crate::Latency) -> bool {
    *latency == crate::Latency::Standard
}

fn is_default_part_target(ms: &u32) -> bool {
    *ms == crate::defaults::PART_TARGET_MS
}

impl WorkerConfig {
    /// Parse the ConfigMap's [`CONFIG_KEY`] content.
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    /// Serialize for the ConfigMap.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        crate::yaml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "room: {namespace: shows, name: lobby}\ningest: {streamKeyFile: /k, maxBitrateKbps: 8000, reconnectGraceSeconds: 10}\ntranscode: {segmentSeconds: 2, dvrWindowSeconds: 120, renditions: [{name: source}]}\nplayback: {pathPrefix: /shows/lobby, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 86400";

    #[test]
    fn standard_rooms_write_the_config_they_wrote_before_low_latency() {
        let standard = WorkerConfig::from_yaml(&format!("{ROOM}}}\n")).expect("yaml");
        let text = standard.to_yaml().expect("yaml");
        assert!(
            !text.contains("latency") && !text.contains("partTargetMs"),
            "{text}"
        );
        let low = WorkerConfig::from_yaml(&format!("{ROOM}, latency: low, partTargetMs: 400}}\n"))
            .expect("yaml");
        let text = low.to_yaml().expect("yaml");
        assert!(
            text.contains("latency: low") && text.contains("partTargetMs: 400"),
            "{text}"
        );
        assert_eq!(WorkerConfig::from_yaml(&text).expect("round trip"), low);
    }
}
