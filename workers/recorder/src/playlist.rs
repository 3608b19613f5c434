//! VOD playlists as plain data with a pure renderer (m3u8-rs), and the master playlist renderer
//! the live origin shares ([`render_master`]): a recording's master carries the same
//! `CODECS`, `RESOLUTION` and `FRAME-RATE` as the live one, which Safari and Apple's validator
//! expect. URIs are relative, so a session's prefix plays from the origin, from the bucket, or
//! from a CDN in front of either:
//!
//! ```text
//! <session>/index.m3u8            master: one variant per rendition -> <rendition>/index.m3u8
//! <session>/<rendition>/index.m3u8  media: #EXT-X-PLAYLIST-TYPE:VOD ... <seq>.ts ... #EXT-X-ENDLIST
//!                                   CMAF: #EXT-X-MAP:URI="init-<id>.mp4" ... <seq>.m4s ...
//! ```

use m3u8_rs::{MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, VariantStream};
use serde::{Deserialize, Serialize};

use crate::{events::init_file_name, spool::SegmentEntry};

/// The segments of one rendition in playlist order: sorted by sequence number, each once.
pub fn ordered(entries: &[SegmentEntry], rendition: &str) -> Vec<SegmentEntry> {
    let mut out: Vec<SegmentEntry> = entries
        .iter()
        .filter(|e| e.rendition == rendition)
        .cloned()
        .collect();
    out.sort_by_key(|e| e.seq);
    out.dedup_by_key(|e| e.seq);
    out
}

/// A VOD media playlist over `segments` (already [`ordered`]). A gap in sequence numbers
/// (segments left out of the recording) is marked as a discontinuity like a flagged one. CMAF
/// segments get an `EXT-X-MAP` before the first and wherever the init segment changes (a
/// publisher reconnect), and the playlist version that allows `EXT-X-MAP` without I-frames
/// only (7).
pub fn media_playlist(segments: &[SegmentEntry]) -> String {
    let max = segments.iter().map(|s| s.duration).fold(0.0_f64, f64::max);
    let cmaf = segments.iter().any(|s| s.init.is_some());
    let playlist = MediaPlaylist {
        version: Some(if cmaf { 7 } else { 3 }),
        target_duration: max.ceil().max(1.0) as u64,
        media_sequence: segments.first().map_or(0, |s| s.seq),
        playlist_type: Some(MediaPlaylistType::Vod),
        end_list: true,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: s.file_name(),
                duration: s.duration as f32,
                discontinuity: i > 0 && (s.discontinuity || s.seq != segments[i - 1].seq + 1),
                map: s
                    .init
                    .filter(|id| i == 0 || segments[i - 1].init != Some(*id))
                    .map(|id| m3u8_rs::Map {
                        uri: init_file_name(id),
                        ..m3u8_rs::Map::default()
                    }),
                ..MediaSegment::default()
            })
            .collect(),
        ..MediaPlaylist::default()
    };
    render(|w| playlist.write_to(w))
}

/// Peak bits per second over the segments (the BANDWIDTH a player budgets for).
pub fn peak_bandwidth(segments: &[SegmentEntry]) -> u64 {
    segments
        .iter()
        .filter(|s| s.duration > 0.0)
        .map(|s| (s.bytes as f64 * 8.0 / s.duration) as u64)
        .max()
        .unwrap_or(0)
}

/// Mean bits per second over the segments (`AVERAGE-BANDWIDTH`).
pub fn average_bandwidth(segments: &[SegmentEntry]) -> u64 {
    let seconds: f64 = segments.iter().map(|s| s.duration.max(0.0)).sum();
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    if seconds > 0.0 {
        (bytes as f64 * 8.0 / seconds) as u64
    } else {
        0
    }
}

/// What a player learns of a rendition from the master before fetching it. The media worker
/// knows it from the stream (SPS, caps) and hands it on with every segment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamAttributes {
    /// RFC 6381 codecs, video then audio: `avc1.64001f,mp4a.40.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
    /// Width and height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
}

/// One entry of a master playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Relative URI of the media playlist, `<rendition>/index.m3u8`.
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub attributes: StreamAttributes,
}

impl Variant {
    /// The variant of rendition `name`, whose media playlist is `<name>/index.m3u8`.
    pub fn of_rendition(name: &str, bandwidth: u64, attributes: StreamAttributes) -> Self {
        Variant {
            uri: format!("{name}/index.m3u8"),
            bandwidth,
            average_bandwidth: None,
            attributes,
        }
    }
}

/// The master playlist, live or VOD: one `EXT-X-STREAM-INF` per variant, in the given order.
pub fn render_master(variants: &[Variant]) -> String {
    let playlist = MasterPlaylist {
        version: Some(3),
        independent_segments: true,
        variants: variants
            .iter()
            .map(|v| VariantStream {
                uri: v.uri.clone(),
                bandwidth: v.bandwidth.max(1),
                average_bandwidth: v.average_bandwidth.map(|b| b.max(1)),
                codecs: v.attributes.codecs.clone(),
                resolution: v
                    .attributes
                    .resolution
                    .filter(|(w, h)| *w > 0 && *h > 0)
                    .map(|(w, h)| m3u8_rs::Resolution {
                        width: u64::from(w),
                        height: u64::from(h),
                    }),
                frame_rate: v
                    .attributes
                    .frame_rate
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .map(|f| (f * 1000.0).round() / 1000.0),
                ..VariantStream::default()
            })
            .collect(),
        ..MasterPlaylist::default()
    };
    render(|w| playlist.write_to(w))
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = f(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u64, discontinuity: bool) -> SegmentEntry {
        SegmentEntry {
            rendition: "720p".into(),
            seq,
            duration: 2.002,
            discontinuity,
            program_date_time: 0,
            bytes: 250_000,
            init: None,
        }
    }

    #[test]
    fn cmaf_vod_playlist_maps_each_init_where_it_starts() {
        let cmaf = |seq, init, discontinuity| SegmentEntry {
            init: Some(init),
            ..seg(seq, discontinuity)
        };
        // A reconnect after segment 1: a new init, flagged; segment 3 was dropped (a gap).
        let log = vec![
            cmaf(0, 1, false),
            cmaf(1, 1, false),
            cmaf(2, 2, true),
            cmaf(4, 2, false),
        ];
        let text = media_playlist(&ordered(&log, "720p"));
        insta::assert_snapshot!(text, @r#"
        #EXTM3U
        #EXT-X-VERSION:7
        #EXT-X-TARGETDURATION:3
        #EXT-X-PLAYLIST-TYPE:VOD
        #EXT-X-MAP:URI="init-1.mp4"
        #EXTINF:2.002,
        0.m4s
        #EXTINF:2.002,
        1.m4s
        #EXT-X-MAP:URI="init-2.mp4"
        #EXT-X-DISCONTINUITY
        #EXTINF:2.002,
        2.m4s
        #EXT-X-DISCONTINUITY
        #EXTINF:2.002,
        4.m4s
        #EXT-X-ENDLIST
        "#);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("valid playlist");
        let maps: Vec<_> = parsed
            .segments
            .iter()
            .map(|s| s.map.as_ref().map(|m| m.uri.as_str()))
            .collect();
        assert_eq!(maps, [Some("init-1.mp4"), None, Some("init-2.mp4"), None]);
    }

    #[test]
    fn vod_playlist_is_ordered_deduplicated_and_marks_discontinuities_and_gaps() {
        let log = vec![
            seg(2, false),
            seg(0, false),
            seg(1, false),
            seg(1, false),
            seg(4, false),
            seg(5, true),
        ];
        let segs = ordered(&log, "720p");
        assert_eq!(
            segs.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 4, 5]
        );
        let text = media_playlist(&segs);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:3"), "{text}");
        // Gap before 4, flagged before 5.
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{text}");
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("valid playlist");
        let uris: Vec<_> = parsed.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, vec!["0.ts", "1.ts", "2.ts", "4.ts", "5.ts"]);
        assert!(parsed.end_list);
    }

    fn ladder() -> Vec<Variant> {
        vec![
            Variant {
                average_bandwidth: Some(1_500_000),
                ..Variant::of_rendition(
                    "source",
                    2_000_000,
                    StreamAttributes {
                        codecs: Some("avc1.64001f,mp4a.40.2".into()),
                        resolution: Some((1280, 720)),
                        frame_rate: Some(30.0),
                    },
                )
            },
            Variant::of_rendition(
                "360p",
                900_000,
                StreamAttributes {
                    codecs: Some("avc1.42c01e,mp4a.40.2".into()),
                    resolution: Some((640, 360)),
                    frame_rate: Some(29.97002997),
                },
            ),
            // A rendition whose stream was never described (a recording made before the media
            // worker sent attributes): BANDWIDTH only, still a valid master.
            Variant::of_rendition("old", 0, StreamAttributes::default()),
        ]
    }

    #[test]
    fn master_carries_codecs_resolution_and_frame_rate() {
        let text = render_master(&ladder());
        insta::assert_snapshot!(text, @r#"
        #EXTM3U
        #EXT-X-VERSION:3
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=1500000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30
        source/index.m3u8
        #EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.42c01e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=29.97
        360p/index.m3u8
        #EXT-X-STREAM-INF:BANDWIDTH=1
        old/index.m3u8
        "#);
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("valid");
        let uris: Vec<&str> = parsed.variants.iter().map(|v| v.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["source/index.m3u8", "360p/index.m3u8", "old/index.m3u8"]
        );
        assert_eq!(peak_bandwidth(&[seg(0, false)]), 999_000);
        let mut small = seg(1, false);
        small.bytes = 125_000;
        assert_eq!(average_bandwidth(&[seg(0, false), small]), 749_250);
        assert_eq!(average_bandwidth(&[]), 0);
    }

    #[test]
    fn attributes_a_publisher_could_make_up_leave_the_master_valid() {
        for frame_rate in [f64::NAN, f64::INFINITY, -30.0, 0.0] {
            let text = render_master(&[Variant::of_rendition(
                "source",
                1_000,
                StreamAttributes {
                    frame_rate: Some(frame_rate),
                    resolution: Some((0, 0)),
                    codecs: None,
                },
            )]);
            assert!(!text.contains("FRAME-RATE"), "{frame_rate}: {text}");
            assert!(!text.contains("RESOLUTION"), "{text}");
            m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("valid");
        }
    }
}
