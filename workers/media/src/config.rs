//! Room configuration: the operator's [`WorkerConfig`] (or a file written by hand), validated
//! once at start with errors that name the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use roomcast_crds::worker_config::WorkerConfig;
use roomcast_crds::{Latency, Rendition, RoomIdentity, TranscodeSpec, defaults};

use crate::error::{Error, Result};

/// Default listen addresses (the ports the operator's Services point at).
pub const DEFAULT_RTMP_ADDR: &str = "0.0.0.0:1935";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9090";
/// Audio bitrate of an encoded rung that names none.
pub const DEFAULT_AUDIO_KBPS: u32 = 128;
pub use roomcast_rtmp::RTMP_APP;

/// Bounds of the LL-HLS part target, as the CRD has them: parts much shorter than 200 ms cost
/// a request each and a `moof` per few frames; longer than a second is no longer low latency.
pub const MIN_PART_TARGET: Duration = Duration::from_millis(200);
pub const MAX_PART_TARGET: Duration = Duration::from_millis(1000);

/// Default x264 speed preset of encoded rungs.
pub const DEFAULT_SPEED_PRESET: &str = "veryfast";

/// Process-wide options (every room).
#[derive(Clone, Debug)]
pub struct MediaOptions {
    pub speed_preset: String,
    /// What one network peer may hold of the listeners.
    pub limits: crate::limits::ListenerLimits,
}

/// Read a `WorkerConfig` YAML file (the operator's ConfigMap, `room.yaml`); errors name the file.
pub fn read_worker_config(path: &Path) -> Result<WorkerConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    WorkerConfig::from_yaml(&text)
        .map_err(|e| Error::config(path.display().to_string(), e.to_string()))
}

/// One room as the media worker runs it.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// `namespace/name`, the `room` label of every metric.
    pub room: RoomIdentity,
    /// `/<namespace>/<room>`: where the room's HTTP paths start.
    pub path_prefix: String,
    pub stream_key_file: PathBuf,
    pub max_bitrate_kbps: u32,
    pub reconnect_grace: Duration,
    pub segment_seconds: u32,
    pub dvr_window_seconds: u32,
    pub renditions: Vec<Rendition>,
    pub playlist_max_age_seconds: u32,
    pub segment_max_age_seconds: u32,
    pub origin_secret_file: Option<PathBuf>,
    /// `low`: LL-HLS on CMAF; `standard`: MPEG-TS.
    pub latency: Latency,
    /// LL-HLS part target duration (`latency: low` only).
    pub part_target: Duration,
}

impl RoomConfig {
    pub fn id(&self) -> &RoomIdentity {
        &self.room
    }

    /// Build and validate from the operator's worker configuration.
    pub fn from_worker_config(cfg: &WorkerConfig) -> Result<Self> {
        let room = RoomConfig {
            room: cfg.room.clone(),
            path_prefix: cfg.playback.path_prefix.trim_end_matches('/').to_owned(),
            stream_key_file: PathBuf::from(&cfg.ingest.stream_key_file),
            max_bitrate_kbps: cfg.ingest.max_bitrate_kbps,
            reconnect_grace: Duration::from_secs(u64::from(cfg.ingest.reconnect_grace_seconds)),
            segment_seconds: cfg.transcode.segment_seconds,
            dvr_window_seconds: cfg.transcode.dvr_window_seconds,
            renditions: cfg.transcode.renditions.clone(),
            playlist_max_age_seconds: cfg.playback.playlist_max_age_seconds,
            segment_max_age_seconds: cfg.playback.segment_max_age_seconds,
            origin_secret_file: cfg.playback.origin_secret_file.as_ref().map(PathBuf::from),
            latency: cfg.playback.latency,
            part_target: Duration::from_millis(u64::from(cfg.playback.part_target_ms)),
        };
        room.validate()?;
        Ok(room)
    }

    /// The segment length every rendition cuts at (on the first keyframe after it).
    pub fn segment(&self) -> Duration {
        Duration::from_secs(u64::from(self.segment_seconds))
    }

    /// The LL-HLS part target of a low-latency room; `None` for a standard one.
    pub fn part_target(&self) -> Option<Duration> {
        (self.latency == Latency::Low).then_some(self.part_target)
    }

    /// The transcode part, as the CRD spells it.
    pub fn transcode(&self) -> TranscodeSpec {
        TranscodeSpec {
            segment_seconds: self.segment_seconds,
            dvr_window_seconds: self.dvr_window_seconds,
            renditions: self.renditions.clone(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let seg_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !seg_ok(&self.room.namespace) {
            return Err(Error::config("room.namespace", "must be a DNS label"));
        }
        if !seg_ok(&self.room.name) {
            return Err(Error::config("room.name", "must be a DNS label"));
        }
        let expected = self.room.path_prefix();
        if self.path_prefix != expected {
            return Err(Error::config(
                "playback.pathPrefix",
                format!("must be {expected:?}, got {:?}", self.path_prefix),
            ));
        }
        if !(1..=10).contains(&self.segment_seconds) {
            return Err(Error::config(
                "transcode.segmentSeconds",
                "must be between 1 and 10",
            ));
        }
        if self.dvr_window_seconds < self.segment_seconds * 3 {
            return Err(Error::config(
                "transcode.dvrWindowSeconds",
                "must hold at least three segments (3 x segmentSeconds)",
            ));
        }
        if !(MIN_PART_TARGET..=MAX_PART_TARGET).contains(&self.part_target) {
            return Err(Error::config(
                "playback.partTargetMs",
                "must be between 200 and 1000",
            ));
        }
        if self.renditions.is_empty() {
            return Err(Error::config(
                "transcode.renditions",
                "needs at least one rendition",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.renditions.iter().enumerate() {
            let field = format!("transcode.renditions[{i}]");
            if !seen.insert(r.name.as_str()) {
                return Err(Error::config(field, format!("duplicate name {:?}", r.name)));
            }
            if !seg_ok(&r.name) || r.name == "index.m3u8" {
                return Err(Error::config(field, "name must be [A-Za-z0-9_-]+"));
            }
            if r.is_source() {
                if r.height.is_some() || r.video_kbps.is_some() {
                    return Err(Error::config(
                        field,
                        "the source rendition is a passthrough: no height or videoKbps",
                    ));
                }
            } else {
                match (r.height, r.video_kbps) {
                    (Some(h), Some(_)) if h % 2 == 0 && h >= 72 => {}
                    (Some(_), Some(_)) => {
                        return Err(Error::config(field, "height must be even and >= 72"));
                    }
                    _ => return Err(Error::config(field, "needs height and videoKbps")),
                }
            }
        }
        Ok(())
    }
}

impl RoomConfig {
    /// A valid room `shows/<name>` for tests: the default ladder, 2 s segments, its stream key
    /// in `stream_key_file`.
    #[doc(hidden)]
    pub fn for_test(name: &str, stream_key_file: PathBuf) -> Self {
        let room = RoomIdentity::new("shows", name);
        RoomConfig {
            path_prefix: room.path_prefix(),
            room,
            stream_key_file,
            max_bitrate_kbps: 8000,
            reconnect_grace: Duration::from_secs(10),
            segment_seconds: 2,
            dvr_window_seconds: 120,
            renditions: roomcast_crds::defaults::renditions(),
            playlist_max_age_seconds: 1,
            segment_max_age_seconds: 86400,
            origin_secret_file: None,
            latency: Latency::Standard,
            part_target: Duration::from_millis(u64::from(defaults::PART_TARGET_MS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = r#"
room: {namespace: shows, name: lobby}
ingest: {streamKeyFile: /etc/roomcast/keys/stream-key, maxBitrateKbps: 8000, reconnectGraceSeconds: 10}
transcode:
  segmentSeconds: 2
  dvrWindowSeconds: 120
  renditions:
    - {name: source}
    - {name: 360p, height: 360, videoKbps: 800, audioKbps: 96}
playback: {pathPrefix: /shows/lobby, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 86400}
"#;

    fn parse(text: &str) -> Result<RoomConfig> {
        let cfg = WorkerConfig::from_yaml(text).expect("yaml");
        RoomConfig::from_worker_config(&cfg)
    }

    #[test]
    fn operator_config_is_accepted() {
        let room = parse(ROOM).expect("valid");
        assert_eq!(room.id(), &RoomIdentity::new("shows", "lobby"));
        assert_eq!(room.renditions.len(), 2);
        assert_eq!(room.reconnect_grace, Duration::from_secs(10));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = ROOM.replace("dvrWindowSeconds: 120", "dvrWindowSeconds: 4");
        let err = parse(&bad).expect_err("invalid").to_string();
        assert!(err.contains("transcode.dvrWindowSeconds"), "{err}");

        let bad = ROOM.replace("height: 360, ", "");
        let err = parse(&bad).expect_err("invalid").to_string();
        assert!(err.contains("transcode.renditions[1]"), "{err}");

        let bad = ROOM.replace("pathPrefix: /shows/lobby", "pathPrefix: /other/lobby");
        let err = parse(&bad).expect_err("invalid").to_string();
        assert!(err.contains("playback.pathPrefix"), "{err}");
    }

    #[test]
    fn latency_mode_is_read_and_hostile_part_targets_are_refused() {
        let room = parse(ROOM).expect("valid");
        assert_eq!(
            room.latency,
            Latency::Standard,
            "configs without it stay standard"
        );
        let low = ROOM.replace(
            "segmentMaxAgeSeconds: 86400",
            "segmentMaxAgeSeconds: 86400, latency: low, partTargetMs: 333",
        );
        let room = parse(&low).expect("valid");
        assert_eq!(room.latency, Latency::Low);
        assert_eq!(room.part_target, Duration::from_millis(333));
        for hostile in ["0", "199", "1001", "4294967295"] {
            let bad = ROOM.replace(
                "segmentMaxAgeSeconds: 86400",
                &format!("segmentMaxAgeSeconds: 86400, latency: low, partTargetMs: {hostile}"),
            );
            let err = parse(&bad).expect_err(hostile).to_string();
            assert!(err.contains("playback.partTargetMs"), "{hostile}: {err}");
        }
        for hostile in ["latency: ultra", "partTargetMs: -1", "latency: [low]"] {
            let bad = ROOM.replace(
                "segmentMaxAgeSeconds: 86400",
                &format!("segmentMaxAgeSeconds: 86400, {hostile}"),
            );
            assert!(WorkerConfig::from_yaml(&bad).is_err(), "{hostile} parsed");
        }
    }
}
