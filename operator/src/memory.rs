//! The media worker's memory ceiling. It keeps the whole DVR window of every rendition in
//! RAM (segments live in memory, the origin serves them from there), so a room's window and
//! ladder decide how much memory its media pod needs. The validate step refuses a room whose
//! estimate cannot fit the media container's memory limit, instead of letting the pod be
//! OOM-killed mid-show once the window fills up.
//!
//! ```text
//!  bytes = Σ over renditions (kbps × 1000 / 8) × dvrWindowSeconds × 5/4  +  256 MiB
//!            source: spec.ingest.maxBitrateKbps    headroom ─┘              └─ base
//!            others: videoKbps + audioKbps (128 when unset)
//! ```
//!
//! A low-latency room also keeps the CMAF parts of its last segments besides the segments
//! themselves: its window counts `min(dvrWindowSeconds, 6 × segmentSeconds)` seconds more
//! ([`held_seconds`]).
//!
//! Everything here is pure arithmetic on the spec; the limit comes from
//! [`OperatorConfig::media_resources_for`], the same function the Deployment builder uses.

use std::fmt;

use roomcast_crds::{Latency, StreamRoomSpec, defaults};

use crate::config::{OperatorConfig, ResourcesFrom};
use crate::quantity::quantity_bytes;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Memory of a media worker with an empty window: the runtime, one encoder pipeline per
/// rung (x264 lookahead frames), socket buffers and the recorder's uploads in flight.
pub const MEDIA_BASE_BYTES: u64 = 256 * MIB;
/// Headroom over the nominal bitrates, as a fraction: MPEG-TS packetisation adds 5-10% at
/// these bitrates, encoders overshoot their target inside the VBV buffer, and the
/// allocator does not give freed segments back at once. 5/4 = 1.25.
pub const SAFETY_FACTOR: (u64, u64) = (5, 4);

/// Estimated bytes the media worker holds for a room: every rendition's bitrate over the
/// DVR window, times [`SAFETY_FACTOR`], plus [`MEDIA_BASE_BYTES`].
///
/// `rendition_kbps` are the nominal bitrates (video + audio) in kbit/s; saturates instead
/// of overflowing, so hostile values give a huge estimate, never a small one.
pub fn media_memory_bytes(
    dvr_window_seconds: u32,
    rendition_kbps: impl IntoIterator<Item = u32>,
) -> u64 {
    let (numerator, denominator) = SAFETY_FACTOR;
    let bytes_per_second = total_kbps(rendition_kbps).saturating_mul(1000) / 8;
    bytes_per_second
        .saturating_mul(u64::from(dvr_window_seconds))
        .saturating_mul(numerator)
        / denominator
        + MEDIA_BASE_BYTES
}

fn total_kbps(rendition_kbps: impl IntoIterator<Item = u32>) -> u64 {
    rendition_kbps
        .into_iter()
        .fold(0u64, |sum, kbps| sum.saturating_add(u64::from(kbps)))
}

/// Seconds of media the worker holds per rendition: the DVR window, plus in a low-latency
/// room the parts of the last [`defaults::LOW_LATENCY_PART_SEGMENTS`] segments still in it.
pub fn held_seconds(spec: &StreamRoomSpec) -> u32 {
    let dvr = spec.transcode.dvr_window_seconds;
    match spec.playback.latency {
        Latency::Standard => dvr,
        Latency::Low => {
            let parts = defaults::LOW_LATENCY_PART_SEGMENTS
                .saturating_mul(spec.transcode.segment_seconds)
                .min(dvr);
            dvr.saturating_add(parts)
        }
    }
}

/// The nominal bitrate of every rendition of a room, in ladder order.
pub fn ladder_kbps(spec: &StreamRoomSpec) -> impl Iterator<Item = u32> + '_ {
    spec.transcode
        .renditions
        .iter()
        .map(|r| r.nominal_kbps(spec.ingest.max_bitrate_kbps))
}

/// A room whose DVR window does not fit its media pod, with the figures for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryOverrun {
    pub dvr_window_seconds: u32,
    /// Seconds of low-latency parts held besides the window (0 in a standard room).
    pub part_seconds: u32,
    pub ladder_kbps: u64,
    pub needed_bytes: u64,
    pub limit_bytes: u64,
    pub limit_from: ResourcesFrom,
}

impl fmt::Display for MemoryOverrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (numerator, denominator) = SAFETY_FACTOR;
        let parts = match self.part_seconds {
            0 => String::new(),
            s => format!(" + {s} s of low-latency parts"),
        };
        write!(
            f,
            "DVR {} s{parts} × {:.1} Mbit/s (spec.transcode.renditions, source at spec.ingest.maxBitrateKbps) × {} headroom + {} base ≈ {} > media memory limit {} ({}): lower spec.transcode.dvrWindowSeconds or the ladder, or raise spec.resources.media.limits.memory",
            self.dvr_window_seconds,
            self.ladder_kbps as f64 / 1000.0,
            numerator as f64 / denominator as f64,
            human_bytes(MEDIA_BASE_BYTES, Round::Up),
            human_bytes(self.needed_bytes, Round::Up),
            human_bytes(self.limit_bytes, Round::Down),
            self.limit_from.describe(),
        )
    }
}

/// Why a room's memory cannot be checked or does not fit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    Overrun(Box<MemoryOverrun>),
    #[error("{field}.limits.memory {value:?} is not a Kubernetes quantity such as 2Gi")]
    InvalidLimit { field: &'static str, value: String },
}

/// Check that a room's DVR window fits the memory limit its media container gets. A room
/// whose media resources set no memory limit has no ceiling to fit and passes.
pub fn check_media_memory(
    spec: &StreamRoomSpec,
    config: &OperatorConfig,
) -> Result<(), MemoryError> {
    let (resources, limit_from) = config.media_resources_for(spec);
    let Some(limit) = resources.limits.as_ref().and_then(|l| l.get("memory")) else {
        return Ok(());
    };
    let limit_bytes = quantity_bytes(&limit.0).ok_or_else(|| MemoryError::InvalidLimit {
        field: match limit_from {
            ResourcesFrom::Room => "spec.resources.media",
            ResourcesFrom::Operator | ResourcesFrom::BuiltIn => "ROOMCAST_MEDIA_RESOURCES",
        },
        value: limit.0.clone(),
    })?;
    let dvr_window_seconds = spec.transcode.dvr_window_seconds;
    let needed_bytes = media_memory_bytes(held_seconds(spec), ladder_kbps(spec));
    if needed_bytes <= limit_bytes {
        return Ok(());
    }
    Err(MemoryError::Overrun(Box::new(MemoryOverrun {
        dvr_window_seconds,
        part_seconds: held_seconds(spec) - dvr_window_seconds,
        ladder_kbps: total_kbps(ladder_kbps(spec)),
        needed_bytes,
        limit_bytes,
        limit_from,
    })))
}

/// Which way [`human_bytes`] rounds: the estimate up and the limit down, so a refused room
/// never reads "2.0 GiB > 2.0 GiB".
#[derive(Clone, Copy)]
enum Round {
    Up,
    Down,
}

/// `10.3 GiB`, `480 MiB`, `512 KiB`, `100 B`: one decimal from GiB up.
fn human_bytes(bytes: u64, round: Round) -> String {
    let (value, unit, tenths) = match bytes {
        b if b >= GIB => (b as f64 / GIB as f64, "GiB", true),
        b if b >= MIB => (b as f64 / MIB as f64, "MiB", false),
        b if b >= KIB => (b as f64 / KIB as f64, "KiB", false),
        b => (b as f64, "B", false),
    };
    let scale = if tenths { 10.0 } else { 1.0 };
    let rounded = match round {
        Round::Up => (value * scale).ceil() / scale,
        Round::Down => (value * scale).floor() / scale,
    };
    if tenths {
        format!("{rounded:.1} {unit}")
    } else {
        format!("{rounded} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
    };
    use roomcast_crds::{WorkerResources, defaults};

    use super::*;

    fn spec(yaml: &str) -> StreamRoomSpec {
        serde_yaml::from_str(yaml).expect("test spec parses")
    }

    fn with_limit(mut spec: StreamRoomSpec, limit: &str) -> StreamRoomSpec {
        spec.resources = Some(WorkerResources {
            media: Some(ResourceRequirements {
                limits: Some([("memory".to_owned(), Quantity(limit.to_owned()))].into()),
                ..ResourceRequirements::default()
            }),
            chat: None,
        });
        spec
    }

    #[test]
    fn estimate_is_bitrate_times_window_times_headroom_plus_base() {
        // 8000 kbit/s = 1,000,000 B/s; × 100 s = 100,000,000 B; × 5/4 = 125,000,000 B.
        assert_eq!(
            media_memory_bytes(100, [8_000]),
            125_000_000 + MEDIA_BASE_BYTES
        );
        assert_eq!(media_memory_bytes(0, [8_000, 2_928]), MEDIA_BASE_BYTES);
        assert_eq!(media_memory_bytes(100, []), MEDIA_BASE_BYTES);
    }

    #[test]
    fn low_latency_rooms_count_their_parts_and_the_message_says_so() {
        // 100 s window, 2 s segments: 12 s of parts on top.
        let low = spec(
            "ingest: {maxBitrateKbps: 8000}\ntranscode: {dvrWindowSeconds: 100, renditions: [{name: source}]}\nplayback: {latency: low}",
        );
        assert_eq!(held_seconds(&low), 112);
        let needed = 140_000_000 + MEDIA_BASE_BYTES;
        let config = OperatorConfig::default();
        assert_eq!(
            check_media_memory(&with_limit(low.clone(), &needed.to_string()), &config),
            Ok(())
        );
        let message = check_media_memory(&with_limit(low, &(needed - 1).to_string()), &config)
            .expect_err("one byte short")
            .to_string();
        assert!(
            message.starts_with("DVR 100 s + 12 s of low-latency parts × 8.0 Mbit/s"),
            "{message}"
        );
        // Parts never count more than the window itself (a 6 s window of 2 s segments).
        let short =
            spec("transcode: {segmentSeconds: 2, dvrWindowSeconds: 6}\nplayback: {latency: low}");
        assert_eq!(held_seconds(&short), 12);
        let hostile = spec(
            "transcode: {segmentSeconds: 4294967295, dvrWindowSeconds: 4294967295}\nplayback: {latency: low}",
        );
        assert_eq!(held_seconds(&hostile), u32::MAX, "saturates");
    }

    #[test]
    fn hostile_bitrates_saturate_instead_of_wrapping() {
        assert!(media_memory_bytes(u32::MAX, [u32::MAX; 64]) > 1 << 62);
    }

    #[test]
    fn default_ladder_counts_source_at_max_bitrate_and_default_audio() {
        // source 8000 + 720p (2800 + 128) + 360p (800 + 96).
        let kbps: Vec<u32> = ladder_kbps(&StreamRoomSpec::default()).collect();
        assert_eq!(kbps, vec![defaults::MAX_BITRATE_KBPS, 2_928, 896]);
        let no_audio =
            spec("transcode: {renditions: [{name: 480p, height: 480, videoKbps: 1000}]}");
        assert_eq!(ladder_kbps(&no_audio).collect::<Vec<_>>(), vec![1_128]);
    }

    #[test]
    fn room_that_just_fits_passes_and_one_byte_less_is_refused() {
        let room = spec(
            "ingest: {maxBitrateKbps: 8000}\ntranscode: {dvrWindowSeconds: 100, renditions: [{name: source}]}",
        );
        let needed = 125_000_000 + MEDIA_BASE_BYTES;
        let config = OperatorConfig::default();
        assert_eq!(
            check_media_memory(&with_limit(room.clone(), &needed.to_string()), &config),
            Ok(())
        );
        let err = check_media_memory(&with_limit(room, &(needed - 1).to_string()), &config)
            .expect_err("one byte short");
        let MemoryError::Overrun(overrun) = err else {
            panic!("{err:?}")
        };
        assert_eq!(overrun.needed_bytes, needed);
        assert_eq!(overrun.limit_bytes, needed - 1);
        assert_eq!(overrun.limit_from, ResourcesFrom::Room);
        // Rounded apart, so the message never claims 2.0 GiB > 2.0 GiB.
        let message = overrun.to_string();
        assert!(
            message.contains("≈ 376 MiB > media memory limit 375 MiB"),
            "{message}"
        );
    }

    #[test]
    fn estimate_rounds_up_and_limit_rounds_down() {
        assert_eq!(human_bytes(2 * GIB + 1, Round::Up), "2.1 GiB");
        assert_eq!(human_bytes(2 * GIB + 1, Round::Down), "2.0 GiB");
        assert_eq!(human_bytes(2 * GIB, Round::Up), "2.0 GiB");
        assert_eq!(human_bytes(MEDIA_BASE_BYTES, Round::Up), "256 MiB");
        assert_eq!(human_bytes(1500, Round::Up), "2 KiB");
        assert_eq!(human_bytes(100, Round::Down), "100 B");
    }

    #[test]
    fn six_hour_window_is_refused_under_the_default_limit_with_the_arithmetic() {
        let room = spec("transcode: {dvrWindowSeconds: 21600}");
        let message = check_media_memory(&room, &OperatorConfig::default())
            .expect_err("6 h of the default ladder is far above 2 GiB")
            .to_string();
        assert_eq!(
            message,
            "DVR 21600 s × 11.8 Mbit/s (spec.transcode.renditions, source at spec.ingest.maxBitrateKbps) × 1.25 headroom + 256 MiB base ≈ 37.5 GiB > media memory limit 2.0 GiB (built-in default): lower spec.transcode.dvrWindowSeconds or the ladder, or raise spec.resources.media.limits.memory"
        );
        // The default room fits the default limit.
        assert_eq!(
            check_media_memory(&StreamRoomSpec::default(), &OperatorConfig::default()),
            Ok(())
        );
    }

    #[test]
    fn media_resources_without_a_memory_limit_are_not_checked() {
        let mut room = spec("transcode: {dvrWindowSeconds: 21600}");
        room.resources = Some(WorkerResources {
            media: Some(ResourceRequirements::default()),
            chat: None,
        });
        assert_eq!(
            check_media_memory(&room, &OperatorConfig::default()),
            Ok(())
        );
    }

    #[test]
    fn invalid_room_memory_limit_names_the_field() {
        for bad in [
            "",
            "lots",
            "-2Gi",
            "2Qi",
            "1e400",
            "NaN",
            "inf",
            ".",
            "2Gi2",
            "99999999999Ei",
        ] {
            let err = check_media_memory(
                &with_limit(StreamRoomSpec::default(), bad),
                &OperatorConfig::default(),
            )
            .expect_err(bad);
            assert_eq!(
                err,
                MemoryError::InvalidLimit {
                    field: "spec.resources.media",
                    value: bad.to_owned()
                }
            );
        }
    }
}
