use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use roomcast_crds::worker_config::{
    CHAT_SIGNING_KEY_KEY, CONFIG_KEY, ChatConfig, IngestConfig, KEYS_DIR, MONGODB_DIR,
    MONGODB_URI_KEY, ORIGIN_SECRET_DIR, ORIGIN_SECRET_KEY, PlaybackConfig, REDIS_DIR,
    REDIS_URL_KEY, RecordingConfig, RoomIdentity, S3_CREDENTIALS_DIR, SPOOL_DIR, STREAM_KEY_DIR,
    STREAM_KEY_KEY, WorkerConfig,
};

use crate::{Result, labels::Component, validate::ValidRoom};

/// The configuration both workers read, with file paths where secrets are mounted: nothing
/// secret is written into it (a ConfigMap is readable by anyone who may list them).
pub fn worker_config(room: &ValidRoom) -> WorkerConfig {
    let spec = &room.spec;
    let stream_key_file = match &spec.ingest.stream_key_secret_ref {
        Some(_) => format!("{STREAM_KEY_DIR}/{STREAM_KEY_KEY}"),
        None => format!("{KEYS_DIR}/{STREAM_KEY_KEY}"),
    };
    let recording = room.recording.as_ref().map(|target| {
        let has_credentials =
            target.s3.credentials_secret_ref.is_some() || target.uses_default_credentials;
        RecordingConfig {
            bucket: target.s3.bucket.clone(),
            prefix: target.s3.prefix.clone(),
            region: target.s3.region.clone(),
            endpoint: target.s3.endpoint.clone(),
            // S3-compatible stores behind a custom endpoint almost always need path style.
            force_path_style: target
                .s3
                .force_path_style
                .unwrap_or(!target.s3.endpoint.is_empty()),
            credentials_dir: has_credentials.then(|| S3_CREDENTIALS_DIR.to_owned()),
            renditions: spec.recording.renditions.clone(),
            retention_days: spec.recording.retention_days,
            spool_dir: SPOOL_DIR.to_owned(),
            spool_size_mib: spec.recording.spool_size_mib(),
        }
    });
    WorkerConfig {
        room: RoomIdentity {
            namespace: room.room.namespace.clone(),
            name: room.room.name.clone(),
        },
        ingest: IngestConfig {
            stream_key_file,
            max_bitrate_kbps: spec.ingest.max_bitrate_kbps,
            reconnect_grace_seconds: spec.ingest.reconnect_grace_seconds,
        },
        transcode: spec.transcode.clone(),
        recording,
        chat: spec.chat.enabled.then(|| ChatConfig {
            spec: roomcast_crds::ChatSpec {
                replicas: room.chat_replicas,
                ..spec.chat.clone()
            },
            signing_key_file: format!("{KEYS_DIR}/{CHAT_SIGNING_KEY_KEY}"),
            redis_url_file: room
                .redis
                .as_ref()
                .map(|_| format!("{REDIS_DIR}/{REDIS_URL_KEY}")),
        }),
        playback: PlaybackConfig {
            path_prefix: room.path_prefix(),
            playlist_max_age_seconds: spec.playback.cdn.playlist_max_age_seconds,
            segment_max_age_seconds: spec.playback.cdn.segment_max_age_seconds,
            origin_secret_file: spec
                .playback
                .cdn
                .origin_secret_ref
                .as_ref()
                .map(|_| format!("{ORIGIN_SECRET_DIR}/{ORIGIN_SECRET_KEY}")),
            latency: spec.playback.latency,
            part_target_ms: spec.playback.part_target_ms,
        },
        mongodb_uri_file: room
            .mongodb
            .as_ref()
            .map(|_| format!("{MONGODB_DIR}/{MONGODB_URI_KEY}")),
    }
}

/// `<room>-config`: [`worker_config`] as YAML under `room.yaml`.
pub fn build_config_map(room: &ValidRoom, worker: &WorkerConfig) -> Result<ConfigMap> {
    let yaml = worker.to_yaml()?;
    Ok(ConfigMap {
        metadata: room.room.meta("config", Component::Room),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), yaml)])),
        ..ConfigMap::default()
    })
}
