//! End-to-end tests of the media worker: real ffmpeg publishing lavfi video + audio over RTMP on
//! 127.0.0.1, real GStreamer transcoding, HLS read back over HTTP and checked with ffprobe.

mod common;

use std::time::Duration;

use common::*;
use roomcast_media::MediaEvent;

const LONG: Duration = Duration::from_secs(60);

fn master_uris(text: &str) -> Vec<String> {
    let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).expect("master playlist");
    parsed.variants.iter().map(|v| v.uri.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ladder_segments_decode_at_their_resolution_and_start_on_aligned_keyframes() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "lobby-key");
    room.renditions = vec![source(), rung("180p", 180, 200), rung("144p", 144, 150)];
    let srv = TestServer::start(vec![room]).await;
    let mut events = srv.server.subscribe();
    // A GOP of 20 frames (1.33 s) is no multiple of the encoders' key-int (15 frames): the
    // encoded rungs only line up because keyframes are forced at the source's boundaries.
    // B-frames make the first PTS differ from the first DTS, so the source (muxed natively) and
    // the rungs (GStreamer) only share a timeline if both map publisher time the same way.
    let publisher = Publisher {
        seconds: 6,
        gop: 20,
        bframes: 2,
        ..Default::default()
    }
    .spawn(&srv.url("lobby-key"));
    assert!(wait_exit(publisher, LONG).await, "ffmpeg publish failed");

    // Grace is 1 s: the session then ends and every playlist gets ENDLIST.
    let base = "/shows/lobby/hls";
    let mut playlists = Vec::new();
    for name in ["source", "180p", "144p"] {
        let r = srv
            .wait_for(&format!("{base}/{name}/index.m3u8"), LONG, |t| {
                t.contains("#EXT-X-ENDLIST")
            })
            .await;
        playlists.push((name, r.text()));
    }
    let master = srv.get(&format!("{base}/index.m3u8")).await;
    assert_eq!(master.status, 200);
    let master_text = master.text();
    assert_eq!(
        master_uris(&master_text),
        vec!["source/index.m3u8", "180p/index.m3u8", "144p/index.m3u8"]
    );
    for needle in [
        "RESOLUTION=320x240",
        "RESOLUTION=240x180",
        "RESOLUTION=192x144",
        "AVERAGE-BANDWIDTH=",
        "CODECS=\"avc1.",
        "mp4a.40.2",
        "FRAME-RATE=15",
    ] {
        assert!(
            master_text.contains(needle),
            "{needle} missing:\n{master_text}"
        );
    }

    // Same segment list (names and durations) in every rendition.
    let lists: Vec<Vec<(String, f64, bool)>> = playlists
        .iter()
        .map(|(_, t)| playlist_segments(t))
        .collect();
    assert!(lists[0].len() >= 4, "too few segments: {:?}", lists[0]);
    for (i, list) in lists.iter().enumerate().skip(1) {
        assert_eq!(
            list.len(),
            lists[0].len(),
            "segment count of {}",
            playlists[i].0
        );
        for (a, b) in list.iter().zip(&lists[0]) {
            assert_eq!(a.0, b.0);
            assert!((a.1 - b.1).abs() < 0.05, "durations differ: {a:?} vs {b:?}");
        }
    }
    for (_, text) in &playlists {
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:1"), "{text}");
    }

    // ffprobe every segment of every rendition.
    let tmp = tempfile::tempdir().expect("tmp");
    let heights = [("source", 240), ("180p", 180), ("144p", 144)];
    let mut first_pts: Vec<Vec<f64>> = Vec::new();
    for (name, height) in heights {
        let mut starts = Vec::new();
        for (uri, duration, _) in
            playlist_segments(&srv.get(&format!("{base}/{name}/index.m3u8")).await.text())
        {
            let seg = srv.get(&format!("{base}/{name}/{uri}")).await;
            assert_eq!(seg.status, 200, "{name}/{uri}");
            let path = write_temp(tmp.path(), &format!("{name}-{uri}"), &seg.body);
            assert_h264_and_aac(&path, height, &format!("{name}/{uri}"));
            let frames = probe_video_frames(&path);
            assert!(!frames.is_empty(), "{name}/{uri} has no frames");
            assert!(
                frames[0].1,
                "{name}/{uri} does not start with a keyframe: {frames:?}"
            );
            let span = frames.len() as f64 / 15.0;
            assert!(
                (span - duration).abs() < 0.15,
                "{name}/{uri}: {} frames for EXTINF {duration}",
                frames.len()
            );
            starts.push(frames[0].0);
        }
        first_pts.push(starts);
    }
    // Boundaries match across renditions: each segment starts at the same media time.
    for starts in &first_pts[1..] {
        assert_eq!(starts.len(), first_pts[0].len());
        for (a, b) in starts.iter().zip(&first_pts[0]) {
            assert!((a - b).abs() < 0.01, "segment starts differ: {a} vs {b}");
        }
    }

    // The recorder's seam saw the whole session.
    let (mut started, mut closed, mut ended) = (0, 0, 0);
    while let Ok(ev) = events.try_recv() {
        match ev {
            MediaEvent::SessionStarted { renditions, .. } => {
                assert_eq!(renditions, vec!["source", "180p", "144p"]);
                started += 1;
            }
            MediaEvent::SegmentClosed { bytes, .. } => {
                assert!(!bytes.is_empty());
                closed += 1;
            }
            MediaEvent::SessionEnded { .. } => ended += 1,
        }
    }
    assert_eq!((started, ended), (1, 1));
    assert_eq!(closed, 3 * lists[0].len());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_publisher_slides_the_dvr_window_and_keeps_memory_bounded() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("fast", "fast-key");
    room.dvr_window_seconds = 4;
    room.grace_seconds = 30;
    let srv = TestServer::start(vec![room]).await;
    let rss_before = rss_kib();
    // 40 s of media as fast as ffmpeg can send it (no -re).
    let publisher = Publisher {
        seconds: 40,
        realtime: false,
        ..Default::default()
    }
    .spawn(&srv.url("fast-key"));
    let mut peak_held = 0usize;
    let mut child = publisher;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(session) = live_session(&srv) {
            peak_held = peak_held.max(session.held_bytes());
        }
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "ffmpeg failed");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "publisher too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Publisher gone, session in grace: the last segments are in.
    let text = srv
        .wait_for("/shows/fast/hls/source/index.m3u8", LONG, |t| {
            // 40 s of 1 s segments: wait for the last one (seq 39) to be in.
            playlist_segments(t)
                .last()
                .is_some_and(|s| seq_of(&s.0) == 39)
        })
        .await
        .text();
    let segs = playlist_segments(&text);
    let total: f64 = segs.iter().map(|s| s.1).sum();
    assert!(
        (4.0..5.0).contains(&total),
        "window holds {total} s, expected dvrWindowSeconds=4 (+ < 1 segment):\n{text}"
    );
    let first = seq_of(&segs[0].0);
    assert!(first >= 30, "window did not slide: first segment {first}");
    // Segments that left the window are gone.
    assert_eq!(
        srv.get_session_file("/shows/fast/hls/source", "0.ts", &[])
            .await
            .status,
        404
    );
    // Held segment bytes stay within the window (~ 2 renditions x 5 s at < 1 Mbit/s).
    assert!(peak_held < 4 * 1024 * 1024, "held {peak_held} bytes");
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(growth < 200 * 1024, "RSS grew by {growth} KiB");
    srv.stop().await;
}

fn live_session(
    srv: &TestServer,
) -> Option<std::sync::Arc<roomcast_media::room::session::Session>> {
    match srv
        .server
        .rooms
        .by_path("shows", "fast")
        .expect("room")
        .liveness()
    {
        roomcast_media::room::Liveness::Session(s) => Some(s),
        roomcast_media::room::Liveness::Idle => None,
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_second_publisher_and_mp3_audio_are_refused() {
    if !media_tools_available() {
        return;
    }
    let srv = TestServer::start(vec![RoomSpec::new("lobby", "right-key")]).await;

    // Wrong key: ffmpeg fails, nothing goes live.
    let wrong = Publisher::default().spawn(&srv.url("wrong-key"));
    assert!(!wait_exit(wrong, LONG).await, "wrong key must be refused");
    assert_eq!(srv.get("/shows/lobby/hls/index.m3u8").await.status, 503);

    // A second publisher while the room is live.
    let first = Publisher {
        seconds: 6,
        ..Default::default()
    }
    .spawn(&srv.url("right-key"));
    srv.wait_for("/shows/lobby/hls/source/index.m3u8", LONG, |_| true)
        .await;
    let second = Publisher::default().spawn(&srv.url("right-key"));
    assert!(
        !wait_exit(second, LONG).await,
        "second publisher must be refused"
    );
    assert!(
        wait_exit(first, LONG).await,
        "first publisher must keep going"
    );

    // MP3 audio: refused with a clear reason (after the first session ended).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mp3 = Publisher {
        audio: "mp3",
        ..Default::default()
    }
    .spawn(&srv.url("right-key"));
    assert!(!wait_exit(mp3, LONG).await, "mp3 audio must be refused");

    let metrics = srv.get("/metrics").await.text();
    assert_eq!(
        metric(
            &metrics,
            "roomcast_media_publishes_refused_total{room=\"\",reason=\"wrong_key\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "roomcast_media_publishes_refused_total{room=\"shows/lobby\",reason=\"already_live\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "roomcast_media_publishes_refused_total{room=\"shows/lobby\",reason=\"unsupported_media\"}"
        ),
        1.0,
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_live_at_once_do_not_cross_talk() {
    if !media_tools_available() {
        return;
    }
    let mut a = RoomSpec::new("alpha", "alpha-key");
    a.renditions = vec![source()];
    let mut b = RoomSpec::new("beta", "beta-key");
    b.renditions = vec![source(), rung("144p", 144, 150)];
    let srv = TestServer::start(vec![a, b]).await;
    let pa = Publisher {
        size: "320x240",
        ..Default::default()
    }
    .spawn(&srv.url("alpha-key"));
    let pb = Publisher {
        size: "256x144",
        video_source: "smptebars",
        ..Default::default()
    }
    .spawn(&srv.url("beta-key"));
    assert!(wait_exit(pa, LONG).await);
    assert!(wait_exit(pb, LONG).await);

    let ma = srv
        .wait_for("/shows/alpha/hls/index.m3u8", LONG, |_| true)
        .await
        .text();
    let mb = srv
        .wait_for("/shows/beta/hls/index.m3u8", LONG, |t| t.contains("144p"))
        .await
        .text();
    assert_eq!(master_uris(&ma), vec!["source/index.m3u8"]);
    assert!(ma.contains("RESOLUTION=320x240"), "{ma}");
    assert_eq!(
        master_uris(&mb),
        vec!["source/index.m3u8", "144p/index.m3u8"]
    );
    assert!(mb.contains("RESOLUTION=256x144"), "{mb}");
    assert_eq!(
        srv.get("/shows/alpha/hls/144p/index.m3u8").await.status,
        404
    );

    // Each room's source segments carry its own publisher's picture size.
    let tmp = tempfile::tempdir().expect("tmp");
    for (room, width) in [("alpha", 320), ("beta", 256)] {
        let seg = srv
            .get_session_file(&format!("/shows/{room}/hls/source"), "1.ts", &[])
            .await;
        assert_eq!(seg.status, 200);
        let p = write_temp(tmp.path(), &format!("{room}.ts"), &seg.body);
        let streams = probe_streams(&p);
        let video = streams["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["codec_type"] == "video").cloned())
            .expect("video");
        assert_eq!(video["width"].as_i64(), Some(width), "{room}");
    }
    let sa: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/alpha/status").await.body).expect("json");
    let sb: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/beta/status").await.body).expect("json");
    assert_ne!(sa["sessionId"], sb["sessionId"]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_grace_continues_the_session_with_a_discontinuity() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "k");
    room.grace_seconds = 8;
    room.renditions = vec![source(), rung("144p", 144, 150)];
    let srv = TestServer::start(vec![room]).await;
    let p1 = Publisher {
        seconds: 3,
        ..Default::default()
    }
    .spawn(&srv.url("k"));
    assert!(wait_exit(p1, LONG).await);
    let status1: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/lobby/status").await.body).expect("json");
    let p2 = Publisher {
        seconds: 3,
        ..Default::default()
    }
    .spawn(&srv.url("k"));
    assert!(wait_exit(p2, LONG).await);
    let status2 = srv
        .wait_for("/shows/lobby/status", LONG, |t| {
            t.contains("\"Reconnecting\"")
        })
        .await;
    let status2: serde_json::Value = serde_json::from_slice(&status2.body).expect("json");
    assert_eq!(status1["sessionId"], status2["sessionId"], "same session");

    for rendition in ["source", "144p"] {
        let text = srv
            .wait_for(
                &format!("/shows/lobby/hls/{rendition}/index.m3u8"),
                LONG,
                |t| t.contains("#EXT-X-DISCONTINUITY"),
            )
            .await
            .text();
        assert!(
            !text.contains("#EXT-X-ENDLIST"),
            "still live during grace:\n{text}"
        );
        let segs = playlist_segments(&text);
        let disc: Vec<usize> = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.2)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(disc.len(), 1, "{text}");
        assert!(
            disc[0] >= 2,
            "discontinuity after the first epoch's segments:\n{text}"
        );
        // Sequence numbers continue across the reconnect.
        let seqs: Vec<u64> = segs.iter().map(|s| seq_of(&s.0)).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }
    let metrics = srv.get("/metrics").await.text();
    assert_eq!(
        metric(&metrics, "roomcast_media_reconnects_total"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "roomcast_media_sessions_total"),
        1.0,
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_origin_sends_cache_headers_etags_cors_and_enforces_the_origin_secret() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "k");
    room.origin_secret = Some("cdn-s3cret");
    room.renditions = vec![source()];
    room.grace_seconds = 30;
    let srv = TestServer::start(vec![room]).await;
    let p = Publisher {
        seconds: 3,
        ..Default::default()
    }
    .spawn(&srv.url("k"));
    assert!(wait_exit(p, LONG).await);
    let secret = [("X-Origin-Secret", "cdn-s3cret")];
    let media = "/shows/lobby/hls/source/index.m3u8";

    // Without or with a wrong secret: 403 on playlists and segments.
    assert_eq!(srv.get(media).await.status, 403);
    assert_eq!(
        srv.get_with(media, &[("X-Origin-Secret", "nope")])
            .await
            .status,
        403
    );
    assert_eq!(
        srv.get("/shows/lobby/hls/source/0123456789abcdef-0.ts")
            .await
            .status,
        403
    );

    let r = srv.get_with(media, &secret).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    // A standard room has no blocking reload: delivery directives, even malformed ones, get
    // the plain playlist, at once and with the plain cache time; so do the CMAF files' names.
    for query in ["_HLS_msn=999&_HLS_part=0", "_HLS_msn=abc", "_HLS_part=1"] {
        let plain = srv.get_with(&format!("{media}?{query}"), &secret).await;
        assert_eq!(plain.status, 200, "{query}");
        assert_eq!(plain.body, r.body, "{query}");
        assert_eq!(plain.header("cache-control"), Some("public, max-age=1"));
    }
    for file in ["0.m4s", "0.0.m4s", "init-1.mp4"] {
        let r = srv
            .get_session_file("/shows/lobby/hls/source", file, &secret)
            .await;
        assert_eq!(r.status, 404, "{file}");
    }
    let etag = r.header("etag").expect("etag").to_owned();
    let r304 = srv
        .get_with(media, &[secret[0], ("If-None-Match", &etag)])
        .await;
    assert_eq!(r304.status, 304);
    assert!(r304.body.is_empty());

    let seg = srv
        .get_session_file("/shows/lobby/hls/source", "0.ts", &secret)
        .await;
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=86400, immutable")
    );
    assert!(seg.header("etag").is_some());
    assert_eq!(&seg.body[..1], &[0x47], "MPEG-TS sync byte");

    // HEAD: headers and length, no body.
    let token = session_token(&r.text());
    let first = format!("/shows/lobby/hls/source/{token}-0.ts");
    let head = http_request(srv.http, "HEAD", &first, &secret).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(seg.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    // CORS for browser players, including the preflight.
    let cors = srv
        .get_with(media, &[secret[0], ("Origin", "https://player.example")])
        .await;
    assert_eq!(cors.header("access-control-allow-origin"), Some("*"));
    let pre = http_request(
        srv.http,
        "OPTIONS",
        media,
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert!(pre.status == 200 || pre.status == 204, "{}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));

    // Expired or unknown segments: 404. Viewers counted from playlist fetches.
    assert_eq!(
        srv.get_session_file("/shows/lobby/hls/source", "999.ts", &secret)
            .await
            .status,
        404
    );
    assert_eq!(
        srv.get_with("/shows/lobby/hls/nope/index.m3u8", &secret)
            .await
            .status,
        404
    );
    let status: serde_json::Value =
        serde_json::from_slice(&srv.get_with("/shows/lobby/status", &secret).await.body)
            .expect("json");
    assert_eq!(status["viewers"], 1, "{status}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_unknown_rooms_answer_clearly_and_ops_endpoints_work() {
    if !media_tools_available() {
        return;
    }
    let srv = TestServer::start(vec![RoomSpec::new("lobby", "k")]).await;
    let idle = srv.get("/shows/lobby/hls/index.m3u8").await;
    assert_eq!(idle.status, 503);
    assert_eq!(idle.header("x-roomcast-room-state"), Some("idle"));
    assert_eq!(idle.header("retry-after"), Some("1"));
    assert_eq!(idle.header("cache-control"), Some("no-store"));
    assert!(idle.text().contains("idle"), "{}", idle.text());
    assert_eq!(
        srv.get("/shows/lobby/hls/source/index.m3u8").await.status,
        503
    );
    assert_eq!(
        srv.get("/shows/lobby/hls/source/0123456789abcdef-0.ts")
            .await
            .status,
        404
    );
    assert_eq!(srv.get("/shows/other/hls/index.m3u8").await.status, 404);
    let status: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/lobby/status").await.body).expect("json");
    assert_eq!(status["phase"], "Idle");
    assert_eq!(status["live"], false);
    assert_eq!(srv.get("/healthz").await.status, 200);
    assert_eq!(srv.get("/readyz").await.status, 200);
    let metrics = srv.get("/metrics").await.text();
    assert!(
        metrics.contains("roomcast_media_http_requests_total"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_the_live_session_with_endlist() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "k");
    room.renditions = vec![source()];
    room.grace_seconds = 60;
    let srv = TestServer::start(vec![room]).await;
    let mut events = srv.server.subscribe();
    let p = Publisher {
        seconds: 30,
        ..Default::default()
    }
    .spawn(&srv.url("k"));
    srv.wait_for("/shows/lobby/hls/source/index.m3u8", LONG, |t| {
        playlist_segments(t).len() >= 2
    })
    .await;
    let server = srv.server.clone();
    srv.stop().await;
    let session = match server
        .rooms
        .by_path("shows", "lobby")
        .expect("room")
        .liveness()
    {
        roomcast_media::room::Liveness::Session(s) => s,
        roomcast_media::room::Liveness::Idle => panic!("session vanished"),
    };
    assert!(session.is_ended());
    let text = session
        .media_playlist("source", roomcast_media::room::low_latency::Skip::Nothing)
        .expect("playlist")
        .body;
    let text = String::from_utf8_lossy(&text);
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let mut ended = false;
    while let Ok(ev) = events.try_recv() {
        ended |= matches!(ev, MediaEvent::SessionEnded { .. });
    }
    assert!(ended, "SessionEnded event");
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publishes() {
    if !media_tools_available() {
        return;
    }
    if std::process::Command::new("gst-inspect-1.0")
        .arg("rtmp2sink")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        roomcast_runtime::skip::missing(
            "gst-inspect-1.0 or rtmp2sink",
            "gstreamer1.0-tools and gstreamer1.0-plugins-bad publish over RTMP from GStreamer",
        );
        return;
    }
    let mut room = RoomSpec::new("lobby", "gst-key");
    room.renditions = vec![source()];
    let srv = TestServer::start(vec![room]).await;
    let launch = format!(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=15/1 ! \
         x264enc key-int-max=15 tune=zerolatency speed-preset=ultrafast ! h264parse ! \
         flvmux name=m streamable=true ! rtmp2sink location={} \
         audiotestsrc num-buffers=180 ! audio/x-raw,rate=44100 ! avenc_aac ! aacparse ! m.",
        srv.url("gst-key")
    );
    let status = tokio::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(launch.split_whitespace())
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("gst-launch-1.0");
    assert!(status.success(), "rtmp2sink publish failed");
    let text = srv
        .wait_for("/shows/lobby/hls/source/index.m3u8", LONG, |t| {
            t.contains("#EXT-X-ENDLIST")
        })
        .await
        .text();
    assert!(playlist_segments(&text).len() >= 3, "{text}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_publish_is_served_without_audio_and_overshoot_is_counted() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "k");
    room.max_bitrate_kbps = 100;
    let srv = TestServer::start(vec![room]).await;
    let p = Publisher {
        seconds: 7,
        audio: "none",
        ..Default::default()
    }
    .spawn(&srv.url("k"));
    assert!(wait_exit(p, LONG).await);
    srv.wait_for("/shows/lobby/hls/144p/index.m3u8", LONG, |t| {
        t.contains("#EXT-X-ENDLIST")
    })
    .await;
    let master = srv.get("/shows/lobby/hls/index.m3u8").await.text();
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    assert!(!master.contains("mp4a"), "{master}");
    let tmp = tempfile::tempdir().expect("tmp");
    for rendition in ["source", "144p"] {
        let seg = srv
            .get_session_file(&format!("/shows/lobby/hls/{rendition}"), "0.ts", &[])
            .await;
        assert_eq!(seg.status, 200);
        let path = write_temp(tmp.path(), &format!("{rendition}.ts"), &seg.body);
        let streams = probe_streams(&path);
        let kinds: Vec<&str> = streams["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .filter_map(|s| s["codec_type"].as_str())
            .collect();
        assert_eq!(kinds, vec!["video"], "{rendition}");
    }
    // ~500 kbit/s against maxBitrateKbps 100: logged and counted, not cut off.
    let metrics = srv.get("/metrics").await.text();
    assert!(
        metric(&metrics, "roomcast_media_ingest_over_limit_total") >= 1.0,
        "{metrics}"
    );
    srv.stop().await;
}
