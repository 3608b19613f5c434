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
    let (_token, file) = uri.split_once('-').expect("a session's name");
    let mut it = file.trim_end_matches(".m4s").split('.');
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
    let token = session_token(&live);
    for needle in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500".to_owned(),
        "#EXT-X-PART-INF:PART-TARGET=0.500".to_owned(),
        format!("#EXT-X-MAP:URI=\"{token}-init-1.mp4\""),
        "#EXT-X-RENDITION-REPORT:URI=\"../144p/index.m3u8\"".to_owned(),
    ] {
        assert!(live.contains(&needle), "{needle} missing:\n{live}");
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
    let part_uri = format!("{token}-{seq}.{part}.m4s");
    assert!(
        blocked.text().contains(&format!("URI=\"{part_uri}\"")),
        "{part_uri} not listed:\n{}",
        blocked.text()
    );
    assert_eq!(blocked.header("cache-control"), Some("public, max-age=2"));

    // The next hinted part is served as soon as it is written.
    let (next_seq, next_part) = hint(&blocked.text());
    let part = srv
        .get(&format!("{BASE}/source/{token}-{next_seq}.{next_part}.m4s"))
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
    for file in [
        "1.ts",
        "init-9.mp4",
        "99999.0.m4s",
        "+1.m4s",
        "1.0.0.m4s",
        "01.m4s",
    ] {
        let r = srv.get(&format!("{BASE}/source/{token}-{file}")).await;
        assert_eq!(r.status, 404, "{file}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{file}");
    }
    // The names of the live parts, without this session's token or with another one.
    for name in [
        format!("{next_seq}.{next_part}.m4s"),
        format!("ffffffffffffffff-{next_seq}.{next_part}.m4s"),
        format!("{}-{next_seq}.{next_part}.m4s", token.to_uppercase()),
    ] {
        let r = srv.get(&format!("{BASE}/source/{name}")).await;
        assert_eq!(r.status, 404, "{name}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{name}");
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
    let token = session_token(&text);
    let maps = tag_lines(&text, "#EXT-X-MAP:");
    assert_eq!(maps.len(), 2, "one init per publisher connection:\n{text}");
    // The second connection's first segment: its own init, after a discontinuity.
    let (before, after) = text
        .split_once(&format!(
            "#EXT-X-MAP:URI=\"{token}-init-2.mp4\"\n#EXT-X-DISCONTINUITY\n"
        ))
        .expect(&text);
    assert!(
        before.contains("init-1.mp4") && !before.contains("DISCONTINUITY"),
        "{text}"
    );
    // The second connection's segments decode with the second init.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut file = srv
        .get(&format!("{BASE}/source/{token}-init-2.mp4"))
        .await
        .body;
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

/// Media sequence numbers of the segment lines of a playlist.
fn segment_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .map(seq_of)
        .collect()
}

/// The number after `tag`; a missing `EXT-X-MEDIA-SEQUENCE` is 0 (m3u8-rs leaves it out).
fn header_number(text: &str, tag: &str) -> u64 {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .and_then(|v| v.split(',').next()?.parse().ok());
    match value {
        None if tag == "#EXT-X-MEDIA-SEQUENCE:" => 0,
        v => v.unwrap_or_else(|| panic!("no {tag}:\n{text}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_updates_leave_out_the_old_segments_and_merge_into_the_whole_playlist() {
    if !media_tools_available() {
        return;
    }
    // One-second segments: a 6 s skip boundary in a 30 s window. Next to it a low-latency room
    // whose 7 s window is too short to skip anything, and a standard room.
    let mut long = RoomSpec::new("lobby", "lobby-key").low_latency();
    long.renditions = vec![source()];
    let mut short = RoomSpec::new("short", "short-key").low_latency();
    short.renditions = vec![source()];
    short.dvr_window_seconds = 7;
    let mut standard = RoomSpec::new("plain", "plain-key");
    standard.renditions = vec![source()];
    let srv = TestServer::start(vec![long, short, standard]).await;
    let publishers: Vec<_> = ["lobby-key", "short-key", "plain-key"]
        .into_iter()
        .map(|key| {
            Publisher {
                seconds: 20,
                ..Default::default()
            }
            .spawn(&srv.url(key))
        })
        .collect();

    let source = format!("{BASE}/source/index.m3u8");
    let full = srv
        .wait_for(&source, LONG, |t| segment_numbers(t).len() >= 10)
        .await
        .text();
    let token = session_token(&full);
    assert!(
        full.contains(",CAN-SKIP-UNTIL=6.000\n") && full.contains("#EXT-X-VERSION:7\n"),
        "{full}"
    );

    // A blocking reload with _HLS_skip=YES: the hinted part, in a delta update.
    let (seq, part) = hint(&full);
    let delta = srv
        .get(&format!(
            "{source}?_HLS_msn={seq}&_HLS_part={part}&_HLS_skip=YES"
        ))
        .await;
    assert_eq!(delta.status, 200, "{}", delta.text());
    assert_eq!(delta.header("cache-control"), Some("public, max-age=1"));
    let text = delta.text();
    assert!(text.contains("#EXT-X-VERSION:9\n"), "{text}");
    assert!(
        text.contains(&format!("URI=\"{token}-{seq}.{part}.m4s\"")),
        "{text}"
    );
    let skipped = header_number(&text, "#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    assert!(skipped > 0, "{text}");
    assert_eq!(
        header_number(&text, "#EXT-X-MEDIA-SEQUENCE:") + skipped,
        segment_numbers(&text)[0],
        "the first listed segment follows the skipped ones:\n{text}"
    );

    // Merged into the whole playlist of the same moment, a delta update is that playlist: the
    // same header numbers, its segments minus the skipped ones, the same lines after them.
    // (Parts arrive every half second: retry until both reads saw the same playlist.)
    let (full, delta) = loop {
        let before = srv.get(&source).await.text();
        let delta = srv.get(&format!("{source}?_HLS_skip=YES")).await;
        let after = srv.get(&source).await.text();
        if before == after {
            break (after, delta);
        }
    };
    assert_eq!(delta.status, 200);
    assert_eq!(
        delta.header("cache-control"),
        Some("public, max-age=1"),
        "a delta without _HLS_msn is cached as the playlist"
    );
    assert_ne!(delta.header("etag"), None);
    let text = delta.text();
    for tag in ["#EXT-X-MEDIA-SEQUENCE:", "#EXT-X-TARGETDURATION:"] {
        assert_eq!(
            header_number(&text, tag),
            header_number(&full, tag),
            "{tag}"
        );
    }
    let skipped = header_number(&text, "#EXT-X-SKIP:SKIPPED-SEGMENTS=") as usize;
    let whole = segment_numbers(&full);
    assert_eq!(segment_numbers(&text), whole[skipped..], "{text}");
    let kept = &full[full
        .find(&format!("\n{token}-{}.m4s\n", whole[skipped]))
        .expect("kept")..];
    assert!(text.ends_with(kept), "{text}\n---\n{full}");
    // The kept segments are the last 6 s and a bit: none that ends beyond the boundary.
    assert!((6..=8).contains(&(whole.len() - skipped)), "{text}");
    let v2 = srv.get(&format!("{source}?_HLS_skip=v2")).await.text();
    assert!(v2.contains(",RECENTLY-REMOVED-DATERANGES=\"\"\n"), "{v2}");

    // Hostile values: 400 with a reason, never cached.
    for query in [
        "_HLS_skip=1",
        "_HLS_skip=yes",
        "_HLS_skip=YESS",
        "_HLS_skip=",
        "_HLS_skip=%59ES",
        "_HLS_skip=YES&_HLS_skip=YES",
        "_HLS_skip=YES&_HLS_skip=v2",
        "_HLS_skip=99999999999999999999999999999999999999",
        "_HLS_skip=YES&_HLS_part=1",
        "_HLS_skip=YES&_HLS_msn=99999999",
    ] {
        let r = srv.get(&format!("{source}?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"), "{query}");
        assert!(r.text().contains("_HLS_"), "{query}: {}", r.text());
    }
    let huge = format!("{source}?_HLS_skip={}", "Y".repeat(16 * 1024));
    let r = srv.get(&huge).await;
    assert_eq!(r.status, 400, "{}", r.text());

    // Playlists that do not offer delta updates answer _HLS_skip with the whole playlist.
    let short = "/shows/short/hls/source/index.m3u8";
    let text = srv
        .wait_for(&format!("{short}?_HLS_skip=YES"), LONG, |t| {
            segment_numbers(t).len() >= 6
        })
        .await
        .text();
    assert!(
        !text.contains("CAN-SKIP-UNTIL")
            && !text.contains("EXT-X-SKIP")
            && text.contains("#EXT-X-VERSION:7\n"),
        "{text}"
    );
    let plain = "/shows/plain/hls/source/index.m3u8";
    for query in ["_HLS_skip=YES", "_HLS_skip=garbage"] {
        let r = srv.get(&format!("{plain}?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert!(
            !r.text().contains("EXT-X-SKIP") && r.text().contains(".ts\n"),
            "{query}"
        );
    }

    // ffmpeg still reads the live playlist that advertises CAN-SKIP-UNTIL.
    let url = format!("http://{}{source}", srv.http);
    tokio::task::spawn_blocking(move || {
        assert_h264_and_aac(std::path::Path::new(&url), 240, "the live playlist")
    })
    .await
    .expect("ffprobe");

    // Part requests are counted as parts, segment requests as segments.
    let metrics = srv.get("/metrics").await.text();
    let parts = |m: &str| {
        metric(
            m,
            "roomcast_media_http_requests_total{kind=\"part\",status=\"200\"}",
        )
    };
    let segments = |m: &str| {
        metric(
            m,
            "roomcast_media_http_requests_total{kind=\"segment\",status=\"200\"}",
        )
    };
    let (parts_before, segments_before) = (parts(&metrics), segments(&metrics));
    let first = segment_numbers(&full)[skipped];
    assert_eq!(
        srv.get(&format!(
            "{BASE}/source/{token}-{}.0.m4s",
            whole[whole.len() - 1]
        ))
        .await
        .status,
        200
    );
    assert_eq!(
        srv.get(&format!("{BASE}/source/{token}-{first}.m4s"))
            .await
            .status,
        200
    );
    let metrics = srv.get("/metrics").await.text();
    assert_eq!(parts(&metrics), parts_before + 1.0, "{metrics}");
    assert_eq!(segments(&metrics), segments_before + 1.0, "{metrics}");

    for publisher in publishers {
        assert!(wait_exit(publisher, LONG).await, "ffmpeg publish failed");
    }
    srv.stop().await;
}
