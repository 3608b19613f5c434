//! VOD playlists as plain data with a pure renderer (m3u8-rs). URIs are relative, so a session's
//! prefix plays from the origin, from the bucket, or from a CDN in front of either:
//!
//! ```text
//! <session>/index.m3u8            master: one variant per rendition -> <rendition>/index.m3u8
//! <session>/<rendition>/index.m3u8  media: #EXT-X-PLAYLIST-TYPE:VOD ... <seq>.ts ... #EXT-X-ENDLIST
//! ```

use m3u8_rs::{MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, VariantStream};

use crate::spool::SegmentEntry;

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
/// (segments left out of the recording) is marked as a discontinuity like a flagged one.
pub fn media_playlist(segments: &[SegmentEntry]) -> String {
    let max = segments.iter().map(|s| s.duration).fold(0.0_f64, f64::max);
    let playlist = MediaPlaylist {
        version: Some(3),
        target_duration: max.ceil().max(1.0) as u64,
        media_sequence: segments.first().map_or(0, |s| s.seq),
        playlist_type: Some(MediaPlaylistType::Vod),
        end_list: true,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: format!("{}.ts", s.seq),
                duration: s.duration as f32,
                discontinuity: i > 0 && (s.discontinuity || s.seq != segments[i - 1].seq + 1),
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

/// The master playlist: one variant per `(rendition, bandwidth)`, in the given order.
pub fn master_playlist(variants: &[(String, u64)]) -> String {
    let playlist = MasterPlaylist {
        version: Some(3),
        variants: variants
            .iter()
            .map(|(name, bandwidth)| VariantStream {
                uri: format!("{name}/index.m3u8"),
                bandwidth: (*bandwidth).max(1),
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
        }
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

    #[test]
    fn master_playlist_points_at_relative_media_playlists() {
        let text = master_playlist(&[("source".into(), 2_000_000), ("360p".into(), 800_000)]);
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("valid");
        assert_eq!(parsed.variants[0].uri, "source/index.m3u8");
        assert_eq!(parsed.variants[1].bandwidth, 800_000);
        assert_eq!(peak_bandwidth(&[seg(0, false)]), 999_000);
    }
}
