//! Which rungs of the room's ladder one publish gets: a rung is encoded only when it gives a
//! viewer something the source passthrough does not. Decided once per publisher connection,
//! when the stream starts, from the source's own size and bitrate ([`SourceVideo`]); pure.
//!
//! The rule ([`choose`]), with the source `H` pixels tall at `B` kbit/s of video:
//! - a rung shorter than `H` is kept: it is what viewers on slower links switch to;
//! - a rung taller than `H` is dropped: it would be upscaled, and the passthrough already serves
//!   the source's full height (scaling the rung down to `H` would only re-encode the source);
//! - a rung exactly `H` tall is kept only when its bitrate is clearly below the source's
//!   (`videoKbps <= CLEARLY_BELOW x B`): then it is a cheaper copy of the full picture; otherwise
//!   it costs a full x264 encode and spends more bits than the source it was made from.
//!
//! A ladder without a `source` passthrough has nothing else serving the source's height, so
//! there the first rung at or above `H` is kept, encoded `H` tall (never upscaled), and the rest
//! at or above `H` are dropped.
//!
//! The frame rate the encoders' keyframe interval follows is settled here too: the SPS's VUI
//! timing, else the metadata's `framerate` when it is a number a camera could produce.
//!
//! Where `H` and `B` come from: `H` from the SPS in the H.264 sequence header (the picture the
//! decoder will really output), the metadata's `width`/`height` only when the SPS cannot be read
//! and only when plausible. `B` from the metadata's `videodatarate` (OBS and ffmpeg send their
//! target bitrate there), capped at the room's `maxBitrateKbps`, which the ingest enforces; when
//! the publisher sends none (ffmpeg in CRF mode writes 0), `B` is taken to be `maxBitrateKbps`,
//! so an unknown bitrate keeps a rung rather than dropping one a viewer could need. Metadata is
//! the publisher's word: lying can only cost the publisher's own rungs at or above its height,
//! never make the worker upscale (the height is the SPS's) or encode rungs beyond the room's
//! ladder.

use std::fmt;
use std::sync::Arc;

use roomcast_crds::Rendition;

use crate::mux::codec::AvcConfig;
use crate::mux::flv::{Tag, TagKind};
use crate::mux::fragment::{ClosedFragment, FragmentSink, RenditionInfo};
use crate::mux::parts::PartOutput;
use crate::mux::passthrough::SourceHints;

/// A rung at the source's height must spend at most this share of the source's video bitrate.
/// x264 re-encoding an already compressed picture at the same size needs most of the source's
/// bits to look as good: at 75 % the rung is visibly softer but still a real saving for a viewer
/// on a slower link (a quarter less to download); above it the rung is a same-size copy that
/// saves too little to pay for an encode. It also absorbs the slack between an encoder's
/// announced and real bitrate (CBR overshoot, ffmpeg announcing kibibits).
pub const CLEARLY_BELOW: f64 = 0.75;

/// Largest plausible picture side from metadata (H.264 level 6.2 tops out at 8192x4320).
const MAX_METADATA_SIDE: u32 = 8192;
/// Highest plausible frame rate from metadata; above it (or NaN, infinite, not positive) the
/// encoders' keyframe interval would be nonsense.
const MAX_METADATA_FRAME_RATE: f64 = 240.0;

/// What the worker knows of the publisher's video when the stream starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceVideo {
    /// Width and height in pixels; `None` when neither the SPS nor the metadata tell.
    pub size: Option<(u32, u32)>,
    /// Frames per second, from the SPS's VUI timing, else plausible metadata.
    pub frame_rate: Option<f64>,
    /// Video bitrate in kbit/s the rungs are judged against.
    pub video_kbps: u32,
    /// Whether [`video_kbps`](Self::video_kbps) is the publisher's claim or the room's ceiling.
    pub kbps_from: KbpsFrom,
}

/// Where [`SourceVideo::video_kbps`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KbpsFrom {
    /// The metadata's `videodatarate` (capped at `maxBitrateKbps`).
    Metadata,
    /// No usable `videodatarate`: the room's `maxBitrateKbps`.
    RoomCeiling,
}

impl SourceVideo {
    /// From the tags the FLV muxer held until the stream's shape was known (they include the
    /// AVC sequence header) and the publisher's metadata. rml_rtmp hands metadata numbers over
    /// as `f64 as u32`, so NaN and negatives arrive as 0 and huge values as `u32::MAX`.
    pub fn observe(tags: &[Tag], metadata: &SourceHints, max_bitrate_kbps: u32) -> Self {
        let plausible = |(w, h): (u32, u32)| {
            (2..=MAX_METADATA_SIDE).contains(&w) && (2..=MAX_METADATA_SIDE).contains(&h)
        };
        let plausible_rate = |f: &f64| f.is_finite() && *f > 0.0 && *f <= MAX_METADATA_FRAME_RATE;
        let sps = sps(tags);
        let size = sps
            .as_ref()
            .map(|c| (c.width, c.height))
            .filter(|(w, h)| *w > 0 && *h > 0)
            .or(metadata.size.filter(|s| plausible(*s)));
        let frame_rate = sps
            .and_then(|c| c.frame_rate)
            .or(metadata.frame_rate)
            .filter(plausible_rate);
        let metadata_video_kbps = metadata.video_kbps;
        let (video_kbps, kbps_from) = match metadata_video_kbps.filter(|k| *k > 0) {
            Some(k) => (k.min(max_bitrate_kbps), KbpsFrom::Metadata),
            None => (max_bitrate_kbps, KbpsFrom::RoomCeiling),
        };
        SourceVideo {
            size,
            frame_rate,
            video_kbps,
            kbps_from,
        }
    }
}

/// The last AVC sequence header among `tags` that parses.
fn sps(tags: &[Tag]) -> Option<AvcConfig> {
    tags.iter()
        .rev()
        .filter(|t| t.kind == TagKind::Video && t.data.get(1) == Some(&0))
        .find_map(|t| AvcConfig::parse(t.data.get(5..)?).ok())
}

/// Why a rung is not encoded for this publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Taller than the source: it would be upscaled.
    Taller { height: u32, source_height: u32 },
    /// As tall as the source and not clearly cheaper.
    NotClearlyBelow {
        video_kbps: u32,
        source_video_kbps: u32,
    },
    /// Another rung already serves the source's height (ladders without `source`).
    HeightServed { height: u32, source_height: u32 },
    /// The source has no video the worker can read.
    NoVideo,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Taller {
                height,
                source_height,
            } => write!(
                f,
                "{height}p is taller than the {source_height}p source and would be upscaled"
            ),
            DropReason::NotClearlyBelow {
                video_kbps,
                source_video_kbps,
            } => write!(
                f,
                "as tall as the source and {video_kbps} kbit/s is not clearly below the source's \
                 {source_video_kbps} kbit/s (at most {:.0} %)",
                CLEARLY_BELOW * 100.0
            ),
            DropReason::HeightServed {
                height,
                source_height,
            } => write!(
                f,
                "{height}p is at or above the {source_height}p source, whose height a better \
                 rung already serves"
            ),
            DropReason::NoVideo => write!(f, "the source has no readable video"),
        }
    }
}

/// The ladder one publish gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Ladder {
    /// Index in the room's ladder of every served rendition (passthrough and encoded), in order.
    pub served: Vec<usize>,
    /// The encoded rungs to build, in ladder order, with the height they are encoded at.
    pub encoded: Vec<Rendition>,
    /// Index in the room's ladder of each of [`encoded`](Self::encoded).
    pub encoded_index: Vec<usize>,
    /// Rungs not encoded, by index in the room's ladder.
    pub dropped: Vec<(usize, DropReason)>,
}

/// Apply the rule of this module to the room's `ladder` for `source`.
pub fn choose(ladder: &[Rendition], source: &SourceVideo) -> Ladder {
    let has_passthrough = ladder.iter().any(Rendition::is_source);
    let mut out = Ladder {
        served: Vec::new(),
        encoded: Vec::new(),
        encoded_index: Vec::new(),
        dropped: Vec::new(),
    };
    let mut full_height_served = has_passthrough;
    for (index, rung) in ladder.iter().enumerate() {
        if rung.is_source() {
            out.served.push(index);
            continue;
        }
        let Some(source_height) = source.size.map(|(_, h)| h) else {
            out.dropped.push((index, DropReason::NoVideo));
            continue;
        };
        // Config validation guarantees a height on every encoded rung; without one the rung
        // is judged as the source's height, the case that needs the most justification.
        let height = rung.height.unwrap_or(source_height);
        let video_kbps = rung.video_kbps.unwrap_or(0);
        let mut encoded = rung.clone();
        if height >= source_height {
            if !has_passthrough {
                if full_height_served {
                    out.dropped.push((
                        index,
                        DropReason::HeightServed {
                            height,
                            source_height,
                        },
                    ));
                    continue;
                }
                full_height_served = true;
                encoded.height = Some(source_height);
            } else if height > source_height {
                out.dropped.push((
                    index,
                    DropReason::Taller {
                        height,
                        source_height,
                    },
                ));
                continue;
            } else if f64::from(video_kbps) > CLEARLY_BELOW * f64::from(source.video_kbps) {
                out.dropped.push((
                    index,
                    DropReason::NotClearlyBelow {
                        video_kbps,
                        source_video_kbps: source.video_kbps,
                    },
                ));
                continue;
            }
        }
        out.served.push(index);
        out.encoded.push(encoded);
        out.encoded_index.push(index);
    }
    out
}

impl Ladder {
    /// Log the choice: one line per dropped rung with its reason, one with what is served.
    pub fn log(&self, ladder: &[Rendition], source: &SourceVideo) {
        let name = |i: usize| ladder.get(i).map_or("?", |r| r.name.as_str());
        for (index, reason) in &self.dropped {
            tracing::info!(rendition = name(*index), %reason, "rung dropped for this publish");
        }
        let served: Vec<&str> = self.served.iter().map(|&i| name(i)).collect();
        let source_kbps = match source.kbps_from {
            KbpsFrom::Metadata => "from the publisher's metadata",
            KbpsFrom::RoomCeiling => "unknown, judged as the room's maxBitrateKbps",
        };
        tracing::info!(
            ?served,
            source_size = ?source.size,
            source_video_kbps = source.video_kbps,
            source_kbps,
            "ladder for this publish"
        );
    }

    /// The sink the pipeline of [`encoded`](Self::encoded) writes to: it numbers its outputs by
    /// position in that list, the session by position in the room's ladder.
    pub fn encoded_sink(&self, session: Arc<dyn FragmentSink>) -> Arc<dyn FragmentSink> {
        Arc::new(LadderSink {
            session,
            index: self.encoded_index.clone(),
        })
    }
}

struct LadderSink {
    session: Arc<dyn FragmentSink>,
    index: Vec<usize>,
}

impl LadderSink {
    /// The room's ladder index of the pipeline's output `output`.
    fn ladder_index(&self, output: usize) -> Option<usize> {
        let index = self.index.get(output).copied();
        if index.is_none() {
            tracing::error!(output, "output the ladder does not have");
        }
        index
    }
}

impl FragmentSink for LadderSink {
    fn fragment_closed(&self, mut fragment: ClosedFragment, info: Option<RenditionInfo>) {
        if let Some(index) = self.ladder_index(fragment.rendition) {
            fragment.rendition = index;
            self.session.fragment_closed(fragment, info);
        }
    }

    fn cmaf(&self, output: usize, part: PartOutput, info: Option<RenditionInfo>) {
        if let Some(index) = self.ladder_index(output) {
            self.session.cmaf(index, part, info);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;

    fn rung(name: &str, height: u32, video_kbps: u32) -> Rendition {
        Rendition {
            name: name.into(),
            height: Some(height),
            video_kbps: Some(video_kbps),
            audio_kbps: None,
        }
    }

    fn source_rendition() -> Rendition {
        Rendition {
            name: "source".into(),
            height: None,
            video_kbps: None,
            audio_kbps: None,
        }
    }

    fn default_ladder() -> Vec<Rendition> {
        roomcast_crds::defaults::renditions()
    }

    fn hints(size: Option<(u32, u32)>, video_kbps: Option<u32>) -> SourceHints {
        SourceHints {
            size,
            frame_rate: None,
            video_kbps,
        }
    }

    fn source(width: u32, height: u32, video_kbps: u32) -> SourceVideo {
        SourceVideo {
            size: Some((width, height)),
            frame_rate: Some(30.0),
            video_kbps,
            kbps_from: KbpsFrom::Metadata,
        }
    }

    fn served_names(ladder: &[Rendition], chosen: &Ladder) -> Vec<String> {
        chosen
            .served
            .iter()
            .map(|&i| ladder[i].name.clone())
            .collect()
    }

    /// x264's SPS (High, 4:2:0, 30 fps) for 640x360 and 1280x720, from ffmpeg -c:v libx264.
    const SPS_640X360: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    const SPS_1280X720: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];

    /// An FLV AVC sequence header tag carrying `sps`.
    fn avc_header_tag(sps: &[u8]) -> Tag {
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let mut body = vec![0x17, 0x00, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        body.extend_from_slice(sps);
        body.push(1);
        body.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        body.extend_from_slice(&pps);
        Tag {
            kind: TagKind::Video,
            timestamp_ms: 0,
            data: Bytes::from(body),
        }
    }

    #[test]
    fn default_ladder_has_a_720p_rung_and_a_source() {
        let ladder = default_ladder();
        assert!(ladder[0].is_source());
        assert_eq!(ladder[1].height, Some(720), "{ladder:?}");
    }

    #[test]
    fn a_720p_source_at_2900k_gets_no_720p_rung_from_the_default_ladder() {
        let ladder = default_ladder();
        let chosen = choose(&ladder, &source(1280, 720, 2900));
        assert_eq!(served_names(&ladder, &chosen), ["source", "360p"]);
        assert_eq!(
            chosen.dropped,
            [(
                1,
                DropReason::NotClearlyBelow {
                    video_kbps: 2800,
                    source_video_kbps: 2900
                }
            )]
        );
        assert_eq!(chosen.encoded.len(), 1);
        assert_eq!(chosen.encoded_index, [2]);
    }

    #[test]
    fn a_480p_source_never_gets_an_upscaled_720p_rung() {
        let ladder = default_ladder();
        // Even at a bitrate far above the rung's.
        let chosen = choose(&ladder, &source(854, 480, 8000));
        assert_eq!(served_names(&ladder, &chosen), ["source", "360p"]);
        assert_eq!(
            chosen.dropped,
            [(
                1,
                DropReason::Taller {
                    height: 720,
                    source_height: 480
                }
            )]
        );
    }

    #[test]
    fn a_1080p_source_at_6000k_keeps_the_720p_rung() {
        let ladder = default_ladder();
        let chosen = choose(&ladder, &source(1920, 1080, 6000));
        assert_eq!(served_names(&ladder, &chosen), ["source", "720p", "360p"]);
        assert!(chosen.dropped.is_empty());
        assert_eq!(chosen.encoded, ladder[1..].to_vec(), "heights unchanged");
    }

    #[test]
    fn a_rung_at_the_source_height_is_kept_only_clearly_below_its_bitrate() {
        let ladder = vec![source_rendition(), rung("720p", 720, 3000)];
        // 3000 <= 0.75 * 4000: a real saving.
        let kept = choose(&ladder, &source(1280, 720, 4000));
        assert_eq!(served_names(&ladder, &kept), ["source", "720p"]);
        // 3000 > 0.75 * 3999.
        let dropped = choose(&ladder, &source(1280, 720, 3999));
        assert_eq!(served_names(&ladder, &dropped), ["source"]);
    }

    #[test]
    fn without_a_passthrough_the_first_tall_rung_is_encoded_at_the_source_height() {
        let ladder = vec![
            rung("1080p", 1080, 5000),
            rung("720p", 720, 2800),
            rung("360p", 360, 800),
        ];
        let chosen = choose(&ladder, &source(854, 480, 2000));
        assert_eq!(served_names(&ladder, &chosen), ["1080p", "360p"]);
        assert_eq!(chosen.encoded[0].height, Some(480), "never upscaled");
        assert_eq!(
            chosen.dropped,
            [(
                1,
                DropReason::HeightServed {
                    height: 720,
                    source_height: 480
                }
            )]
        );
    }

    #[test]
    fn a_source_without_video_gets_only_the_passthrough() {
        let ladder = default_ladder();
        let video = SourceVideo::observe(&[], &hints(None, None), 8000);
        assert_eq!(video.size, None);
        let chosen = choose(&ladder, &video);
        assert_eq!(served_names(&ladder, &chosen), ["source"]);
        assert!(chosen.encoded.is_empty());
        assert!(
            chosen
                .dropped
                .iter()
                .all(|(_, r)| *r == DropReason::NoVideo)
        );
    }

    #[test]
    fn the_sps_decides_the_height_whatever_the_metadata_claims() {
        let tags = [avc_header_tag(SPS_640X360)];
        for claimed in [Some((0, 0)), Some((1920, 99_999)), Some((7680, 4320)), None] {
            let video = SourceVideo::observe(&tags, &hints(claimed, Some(2000)), 8000);
            assert_eq!(video.size, Some((640, 360)), "claimed {claimed:?}");
            let chosen = choose(&default_ladder(), &video);
            assert_eq!(
                served_names(&default_ladder(), &chosen),
                ["source", "360p"],
                "claimed {claimed:?}"
            );
        }
    }

    #[test]
    fn implausible_metadata_sizes_are_ignored_without_an_sps() {
        for claimed in [(0, 720), (1280, 0), (1280, 99_999), (u32::MAX, u32::MAX)] {
            let video = SourceVideo::observe(&[], &hints(Some(claimed), Some(2000)), 8000);
            assert_eq!(video.size, None, "claimed {claimed:?}");
            let chosen = choose(&default_ladder(), &video);
            assert!(chosen.encoded.is_empty(), "claimed {claimed:?}");
        }
        let plausible = SourceVideo::observe(&[], &hints(Some((1280, 720)), Some(2000)), 8000);
        assert_eq!(plausible.size, Some((1280, 720)));
    }

    #[test]
    fn hostile_videodatarate_is_unknown_or_capped_at_the_room_ceiling() {
        let tags = [avc_header_tag(SPS_1280X720)];
        // NaN and negative numbers reach us as 0 (rml_rtmp's `as u32`): unknown.
        let zero = SourceVideo::observe(&tags, &hints(None, Some(0)), 8000);
        assert_eq!(
            (zero.video_kbps, zero.kbps_from),
            (8000, KbpsFrom::RoomCeiling)
        );
        let absent = SourceVideo::observe(&tags, &hints(None, None), 8000);
        assert_eq!(absent, zero);
        // Huge numbers saturate to u32::MAX: capped at what the ingest lets through.
        let huge = SourceVideo::observe(&tags, &hints(None, Some(u32::MAX)), 8000);
        assert_eq!(
            (huge.video_kbps, huge.kbps_from),
            (8000, KbpsFrom::Metadata)
        );
        // Whatever the claim, no rung is upscaled and nothing outside the ladder is encoded.
        let ladder = vec![
            source_rendition(),
            rung("1080p", 1080, 5000),
            rung("720p", 720, 2800),
            rung("360p", 360, 800),
        ];
        for video in [zero, huge] {
            let chosen = choose(&ladder, &video);
            assert_eq!(served_names(&ladder, &chosen), ["source", "720p", "360p"]);
            assert!(chosen.encoded.iter().all(|r| r.height <= Some(720)));
        }
        // A claimed tiny bitrate only costs the publisher its own-height rung.
        let tiny = SourceVideo::observe(&tags, &hints(None, Some(1)), 8000);
        let chosen = choose(&ladder, &tiny);
        assert_eq!(served_names(&ladder, &chosen), ["source", "360p"]);
    }

    #[test]
    fn the_frame_rate_is_the_sps_s_else_a_plausible_claim() {
        let claim = |frame_rate| SourceHints {
            size: None,
            frame_rate: Some(frame_rate),
            video_kbps: None,
        };
        // x264's SPS carries VUI timing (30 fps); it wins over any claim.
        let tags = [avc_header_tag(SPS_640X360)];
        let video = SourceVideo::observe(&tags, &claim(1e300), 8000);
        assert_eq!(video.frame_rate, Some(30.0));
        for hostile in [f64::NAN, f64::INFINITY, -25.0, 0.0, 1e300, 241.0] {
            let video = SourceVideo::observe(&[], &claim(hostile), 8000);
            assert_eq!(video.frame_rate, None, "{hostile}");
        }
        let video = SourceVideo::observe(&[], &claim(25.0), 8000);
        assert_eq!(video.frame_rate, Some(25.0));
    }

    #[test]
    fn a_garbage_sequence_header_reads_as_no_sps() {
        let garbage = [
            Tag {
                kind: TagKind::Video,
                timestamp_ms: 0,
                data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
            },
            Tag {
                kind: TagKind::Video,
                timestamp_ms: 0,
                data: Bytes::from_static(&[0x17, 0]),
            },
        ];
        let video = SourceVideo::observe(&garbage, &hints(Some((640, 360)), None), 8000);
        assert_eq!(video.size, Some((640, 360)), "falls back to the metadata");
    }

    #[derive(Default)]
    struct Collect(Mutex<Vec<usize>>);
    impl FragmentSink for Collect {
        fn fragment_closed(&self, fragment: ClosedFragment, _: Option<RenditionInfo>) {
            if let Ok(mut v) = self.0.lock() {
                v.push(fragment.rendition);
            }
        }

        fn cmaf(&self, rendition: usize, _: PartOutput, _: Option<RenditionInfo>) {
            if let Ok(mut v) = self.0.lock() {
                v.push(rendition);
            }
        }
    }

    #[test]
    fn encoded_fragments_reach_the_session_under_their_ladder_index() {
        let ladder = default_ladder();
        let chosen = choose(&ladder, &source(1280, 720, 2900));
        let session = Arc::new(Collect::default());
        let sink = chosen.encoded_sink(session.clone());
        let fragment = |rendition| ClosedFragment {
            rendition,
            bytes: Bytes::from_static(b"ts"),
            start: std::time::Duration::ZERO,
            end: std::time::Duration::from_secs(2),
        };
        // The pipeline's output 0 is the 360p rung, third in the room's ladder; an output the
        // ladder does not have goes nowhere.
        sink.fragment_closed(fragment(0), None);
        sink.fragment_closed(fragment(7), None);
        assert_eq!(*session.0.lock().expect("lock"), [2]);
    }
}
