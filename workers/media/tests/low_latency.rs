//! Low-latency rooms end to end: a real ffmpeg publish, the passthrough source and a GStreamer
//! rung muxed to CMAF parts, LL-HLS playlists with blocking reload and preload hints read over
//! HTTP, and every rendition decoded by ffprobe from its init segment and segments.

mod common;

use std::time::{Duration, Instant};

use common::*;

const LONG: Duration = Duration::from_secs(60);
const BASE: &str = "/shows/lobby/hls";

/// The value of `ATTR="..."` or `ATTR=...` in a tag line.
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

fn tag_lines<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(tag)).collect()
}

/// `<seq>.<part>` of the preload hint.
fn hint(text: &str) -> (u64, u64) {
    let line = tag_lines(text, "#EXT-X-PRELOAD-HINT:")
        .pop()
        .unwrap_or_else(|| panic!("no preload hint:\n{text}"));
    let uri = attr(line, "URI").expect("hint URI");
    let mut it = uri.trim_end_matches(".m4s").split('.');
    let seq = it.next().and_then(|s| s.parse().ok()).expect("seq");
    let part = it.next().and_then(|s| s.parse().ok()).expect("part");
    (seq, part)
}

fn low_latency_room() -> RoomSpec {
    let mut room = RoomSpec::new("lobby", "lobby-key").low_latency();
    room.segment_seconds = 2;
    room.grace_seconds = 8;
    room.renditions = vec![source(), rung("144p", 144, 150)];
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_latency_room_serves_parts_blocks_reloads_and_every_rendition_decodes() {
    if !media_tools_available() {
        return;
    }
    let srv = TestServer::start(vec![low_latency_room()]).await;
    let publisher = Publisher {
        seconds: 9,
        gop: 15,
        ..Default::default()
    }
    .spawn(&srv.url("lobby-key"));

    // Live: parts, server control and the hint, in both renditions.
    let source = format!("{BASE}/source/index.m3u8");
    let live = srv
        .wait_for(&source, LONG, |t| {
            t.contains("#EXT-X-PART:") && t.contains("#EXT-X-RENDITION-REPORT:")
        })
        .await
        .text();
    for needle in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500",
        "#EXT-X-PART-INF:PART-TARGET=0.500",
        "#EXT-X-MAP:URI=\"init-1.mp4\"",
        "#EXT-X-RENDITION-REPORT:URI=\"../144p/index.m3u8\"",
    ] {
        assert!(live.contains(needle), "{needle} missing:\n{live}");
    }
    for part in tag_lines(&live, "#EXT-X-PART:") {
        let d: f64 = attr(part, "DURATION")
            .and_then(|d| d.parse().ok())
            .expect("DURATION");
        assert!(d <= 0.5 && d > 0.3, "{part}");
    }

    // A blocking reload for the hinted part answers once it is there, and lists it.
    let (seq, part) = hint(&live);
    let asked = Instant::now();
    let blocked = srv
        .get(&format!("{source}?_HLS_msn={seq}&_HLS_part={part}"))
        .await;
    assert_eq!(blocked.status, 200, "{}", blocked.text());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let part_uri = format!("{seq}.{part}.m4s");
    assert!(
        blocked.text().contains(&format!("URI=\"{part_uri}\"")),
        "{part_uri} not listed:\n{}",
        blocked.text()
    );
    assert_eq!(blocked.header("cache-control"), Some("public, max-age=2"));

    // The next hinted part is served as soon as it is written.
    let (next_seq, next_part) = hint(&blocked.text());
    let part = srv
        .get(&format!("{BASE}/source/{next_seq}.{next_part}.m4s"))
        .await;
    assert_eq!(part.status, 200, "{}", part.text());
    assert_eq!(&part.body[4..8], b"moof");
    assert_eq!(part.header("content-type"), Some("video/iso.segment"));
    assert!(
        part.header("cache-control")
            .is_some_and(|c| c.contains("immutable")),
        "{:?}",
        part.headers
    );

    // Hostile directives.
    for (query, status) in [
        ("_HLS_msn=abc", 400),
        ("_HLS_part=1", 400),
        ("_HLS_msn=-1", 400),
        ("_HLS_msn=1&_HLS_msn=2", 400),
        ("_HLS_msn=99999999", 400),
        (
            "_HLS_msn=18446744073709551615&_HLS_part=18446744073709551615",
            400,
        ),
    ] {
        let r = srv.get(&format!("{source}?{query}")).await;
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"), "{query}");
    }
    for file in ["1.ts", "init-9.mp4", "99999.0.m4s", "+1.m4s", "1.0.0.m4s"] {
        let r = srv.get(&format!("{BASE}/source/{file}")).await;
        assert_eq!(r.status, 404, "{file}");
    }

    assert!(wait_exit(publisher, LONG).await, "ffmpeg publish failed");
    // The publisher is gone and the session in its grace period: a part that will never come
    // times out with 503 after three target durations.
    let last = srv.get(&source).await.text();
    let (seq, _) = hint(&last);
    let asked = Instant::now();
    let r = srv
        .get(&format!("{source}?_HLS_msn={}&_HLS_part=0", seq + 1))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(5_900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // Ended: every rendition's init + segments decode at its height, keyframe first.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut segment_lists = Vec::new();
    for (name, height) in [("source", 240), ("144p", 144)] {
        let text = srv
            .wait_for(&format!("{BASE}/{name}/index.m3u8"), LONG, |t| {
                t.contains("#EXT-X-ENDLIST")
            })
            .await
            .text();
        assert!(!text.contains("PRELOAD-HINT"), "{text}");
        let maps = tag_lines(&text, "#EXT-X-MAP:");
        assert_eq!(maps.len(), 1, "{text}");
        let init = srv
            .get(&format!(
                "{BASE}/{name}/{}",
                attr(maps[0], "URI").expect("map")
            ))
            .await;
        assert_eq!(init.status, 200);
        assert_eq!(init.header("content-type"), Some("video/mp4"));
        let segments: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
            .collect();
        assert!(segments.len() >= 4, "{text}");
        let pdts = tag_lines(&text, "#EXT-X-PROGRAM-DATE-TIME:");
        assert_eq!(
            pdts.len(),
            segments.len(),
            "one PROGRAM-DATE-TIME a segment"
        );
        let mut file = init.body.clone();
        let mut last_segment = Vec::new();
        for uri in &segments {
            let seg = srv.get(&format!("{BASE}/{name}/{uri}")).await;
            assert_eq!(seg.status, 200, "{name}/{uri}");
            file.extend_from_slice(&seg.body);
            last_segment = seg.body;
        }
        // The last segment is its listed parts, byte for byte.
        let last_seq = segments.last().expect("segment").trim_end_matches(".m4s");
        let mut parts = Vec::new();
        for line in tag_lines(&text, "#EXT-X-PART:") {
            let uri = attr(line, "URI").expect("part uri");
            if uri.starts_with(&format!("{last_seq}.")) {
                parts.extend(srv.get(&format!("{BASE}/{name}/{uri}")).await.body);
            }
        }
        assert_eq!(parts, last_segment, "{name}: parts and segment differ");

        let path = write_temp(tmp.path(), &format!("{name}.mp4"), &file);
        assert_h264_and_aac(&path, height, name);
        let frames = probe_video_frames(&path);
        assert!(frames.first().is_some_and(|f| f.1), "{name}: {frames:?}");
        // 9 s at 15 fps, give or take the first GOP the segmenter waits for.
        assert!(
            (120..=136).contains(&frames.len()),
            "{name}: {} frames",
            frames.len()
        );
        segment_lists.push(segments.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    assert_eq!(
        segment_lists[0], segment_lists[1],
        "same segments in every rendition"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_continues_the_session_with_a_discontinuity_and_a_new_init() {
    if !media_tools_available() {
        return;
    }
    let mut room = low_latency_room();
    room.renditions = vec![source()];
    room.grace_seconds = 4;
    let srv = TestServer::start(vec![room]).await;
    for _ in 0..2 {
        let publisher = Publisher {
            seconds: 4,
            ..Default::default()
        }
        .spawn(&srv.url("lobby-key"));
        assert!(wait_exit(publisher, LONG).await, "ffmpeg publish failed");
    }
    let playlist = format!("{BASE}/source/index.m3u8");
    let text = srv
        .wait_for(&playlist, LONG, |t| t.contains("#EXT-X-ENDLIST"))
        .await
        .text();
    let maps = tag_lines(&text, "#EXT-X-MAP:");
    assert_eq!(maps.len(), 2, "one init per publisher connection:\n{text}");
    // The second connection's first segment: its own init, after a discontinuity.
    let (before, after) = text
        .split_once("#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXT-X-DISCONTINUITY\n")
        .expect(&text);
    assert!(
        before.contains("init-1.mp4") && !before.contains("DISCONTINUITY"),
        "{text}"
    );
    // The second connection's segments decode with the second init.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut file = srv.get(&format!("{BASE}/source/init-2.mp4")).await.body;
    for uri in after
        .lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
    {
        let seg = srv.get(&format!("{BASE}/source/{uri}")).await;
        assert_eq!(seg.status, 200, "{uri}");
        file.extend_from_slice(&seg.body);
    }
    let path = write_temp(tmp.path(), "second.mp4", &file);
    assert_h264_and_aac(&path, 240, "after the reconnect");
    let frames = probe_video_frames(&path);
    assert!(frames.first().is_some_and(|f| f.1), "{frames:?}");
    assert!(frames.len() >= 45, "{} frames", frames.len());
    srv.stop().await;
}
