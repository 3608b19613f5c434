//! Defaults of the StreamRoom spec. They appear in the generated schema (so the API server
//! fills them in) and in serde (so a room read from a file gets the same values).

pub const SEGMENT_SECONDS: u32 = 2;
pub const DVR_WINDOW_SECONDS: u32 = 120;
pub const MAX_BITRATE_KBPS: u32 = 8_000;
pub const RECONNECT_GRACE_SECONDS: u32 = 10;
pub const CHAT_REPLICAS: i32 = 2;
pub const CHAT_HISTORY_SIZE: u32 = 200;
pub const CHAT_MAX_MESSAGE_LENGTH: u32 = 500;
pub const CHAT_RATE_LIMIT_PER_MINUTE: u32 = 30;
pub const PLAYLIST_MAX_AGE_SECONDS: u32 = 1;
pub const SEGMENT_MAX_AGE_SECONDS: u32 = 86_400;
/// LL-HLS part target: players hold back three parts (1.5 s) and poll about twice a second,
/// which meets a 2 s glass-to-glass goal without tripling the origin's request rate the way
/// the spec's 200 ms floor would.
pub const PART_TARGET_MS: u32 = 500;
/// Segments whose LL-HLS parts a media worker keeps besides the segments (the parts its
/// playlists list, three target durations, and a margin for players a reload behind); the
/// operator's memory estimate counts them.
pub const LOW_LATENCY_PART_SEGMENTS: u32 = 6;
pub const SPOOL_SIZE_MIB: u32 = 2_048;
pub const STREAM_KEY_SECRET_KEY: &str = "stream-key";
/// Name of the passthrough rendition: the publisher's own stream, not re-encoded.
pub const SOURCE_RENDITION: &str = "source";
/// AAC bitrate of an encoded rendition that names no `audioKbps`.
pub const AUDIO_KBPS: u32 = 128;

pub(crate) fn part_target_ms() -> u32 {
    PART_TARGET_MS
}
pub(crate) fn segment_seconds() -> u32 {
    SEGMENT_SECONDS
}
pub(crate) fn dvr_window_seconds() -> u32 {
    DVR_WINDOW_SECONDS
}
pub(crate) fn max_bitrate_kbps() -> u32 {
    MAX_BITRATE_KBPS
}
pub(crate) fn reconnect_grace_seconds() -> u32 {
    RECONNECT_GRACE_SECONDS
}
pub(crate) fn chat_replicas() -> i32 {
    CHAT_REPLICAS
}
pub(crate) fn chat_history_size() -> u32 {
    CHAT_HISTORY_SIZE
}
pub(crate) fn chat_max_message_length() -> u32 {
    CHAT_MAX_MESSAGE_LENGTH
}
pub(crate) fn chat_rate_limit_per_minute() -> u32 {
    CHAT_RATE_LIMIT_PER_MINUTE
}
pub(crate) fn playlist_max_age_seconds() -> u32 {
    PLAYLIST_MAX_AGE_SECONDS
}
pub(crate) fn segment_max_age_seconds() -> u32 {
    SEGMENT_MAX_AGE_SECONDS
}
pub(crate) fn spool_size_mib() -> u32 {
    SPOOL_SIZE_MIB
}
pub(crate) fn stream_key_secret_key() -> String {
    STREAM_KEY_SECRET_KEY.to_owned()
}
pub(crate) fn enabled() -> bool {
    true
}

/// The ABR ladder a room gets when it names none: the publisher's stream plus 720p and 360p.
pub fn renditions() -> Vec<crate::Rendition> {
    use crate::Rendition;
    vec![
        Rendition {
            name: SOURCE_RENDITION.to_owned(),
            height: None,
            video_kbps: None,
            audio_kbps: None,
        },
        Rendition {
            name: "720p".to_owned(),
            height: Some(720),
            video_kbps: Some(2_800),
            audio_kbps: Some(128),
        },
        Rendition {
            name: "360p".to_owned(),
            height: Some(360),
            video_kbps: Some(800),
            audio_kbps: Some(96),
        },
    ]
}
