//! The ladder a real publish gets (`transcode::ladder`): ffmpeg publishes a 640x360 source
//! announcing 600 kbit/s into a room whose ladder has a 720p rung (would be upscaled), a 360p
//! rung at 800 kbit/s (as tall as the source and not clearly cheaper) and a 240p rung. Only the
//! source and the 240p rung are served, everywhere a viewer or an operator looks, and ffprobe
//! decodes every served rendition through the master playlist.

mod common;

use std::time::Duration;

use common::*;
use roomcast_media::status_report::media_report;
use roomcast_recorder::testing::ffprobe_variants;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360p_source_gets_no_upscaled_or_wasted_rung_and_what_is_served_decodes() {
    if !media_tools_available() {
        return;
    }
    let mut room = RoomSpec::new("lobby", "lobby-key");
    room.renditions = vec![
        source(),
        rung("720p", 720, 2800),
        rung("360p", 360, 800),
        rung("240p", 240, 300),
    ];
    let srv = TestServer::start(vec![room]).await;
    let seconds = 5;
    let fps = 15;
    let publisher = Publisher {
        seconds,
        size: "640x360",
        fps,
        gop: fps,
        video_kbps: Some(600),
        ..Default::default()
    }
    .spawn(&srv.url("lobby-key"));
    assert!(wait_exit(publisher, LONG).await, "ffmpeg publish failed");

    let base = "/shows/lobby/hls";
    for name in ["source", "240p"] {
        srv.wait_for(&format!("{base}/{name}/index.m3u8"), LONG, |t| {
            t.contains("#EXT-X-ENDLIST")
        })
        .await;
    }
    let master = srv.get(&format!("{base}/index.m3u8")).await.text();
    let parsed = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("master playlist");
    let uris: Vec<&str> = parsed.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["source/index.m3u8", "240p/index.m3u8"], "{master}");
    for dropped in ["720p", "360p"] {
        let r = srv.get(&format!("{base}/{dropped}/index.m3u8")).await;
        let listed = if r.status == 200 {
            playlist_segments(&r.text()).len()
        } else {
            0
        };
        assert_eq!(listed, 0, "{dropped} was encoded: {}", r.text());
    }

    // The worker's own status and the room's status.media name the same renditions.
    let status: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/lobby/status").await.body).expect("status json");
    assert_eq!(status["renditions"], serde_json::json!(["source", "240p"]));
    let room = srv.server.rooms.iter().next().expect("room").clone();
    assert_eq!(
        media_report(&room, None, None).renditions,
        ["source", "240p"]
    );

    // A player's view: every variant of the master decodes, at its height, to the same frames.
    let url = format!("http://{}{base}/index.m3u8", srv.http);
    let variants = tokio::task::spawn_blocking(move || ffprobe_variants(&url))
        .await
        .expect("ffprobe task")
        .expect("every variant decodes");
    let heights: Vec<Option<u64>> = variants.iter().map(|v| v.height).collect();
    assert_eq!(heights, [Some(360), Some(240)], "{variants:?}");
    let expected = u64::from(seconds * fps);
    for v in &variants {
        assert!(
            v.video_frames + u64::from(fps) >= expected && v.video_frames <= expected,
            "{v:?}: {expected} frames published"
        );
        assert!(v.audio_frames > 0, "{v:?} has no audio");
    }
    srv.stop().await;
}
