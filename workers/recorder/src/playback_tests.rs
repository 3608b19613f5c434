//! Real MPEG-TS segments (made once by ffmpeg) recorded, finalised and played back by ffprobe
//! end to end: from the local store's directory and through the HTTP API's VOD proxy.
//! Skips, saying so, when ffmpeg/ffprobe are missing; fails instead under `CI`, which installs
//! them.

use std::{process::Command, sync::Arc, time::Duration};

use bytes::Bytes;

use crate::{
    Catalog, DynStore, RecordEvent, Recorder, RecordingStatus,
    api::{ApiState, router},
    catalog::embedded::EmbeddedCatalog,
    config::RecorderConfig,
    poster::FfmpegPoster,
    store::local::LocalStore,
    testing::ffprobe_duration,
};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// 30 s of 160x120 test video with audio, cut into ~2 s HLS segments: (duration, bytes).
fn make_segments(dir: &std::path::Path) -> Vec<(f64, Bytes)> {
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "30", "-c:v", "libx264", "-g", "20", "-pix_fmt", "yuv420p", "-c:a", "aac",
        ])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .arg("-hls_segment_filename")
        .arg(dir.join("seg%d.ts"))
        .arg(dir.join("out.m3u8"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    let text = std::fs::read(dir.join("out.m3u8")).expect("playlist");
    let playlist = m3u8_rs::parse_media_playlist_res(&text).expect("ffmpeg playlist");
    playlist
        .segments
        .iter()
        .map(|s| {
            let bytes = std::fs::read(dir.join(&s.uri)).expect("segment");
            (f64::from(s.duration), Bytes::from(bytes))
        })
        .collect()
}

#[tokio::test]
async fn a_recorded_session_plays_end_to_end_from_the_store_and_through_the_api() {
    if !have("ffmpeg") || !have("ffprobe") {
        roomcast_runtime::skip::missing(
            "ffmpeg/ffprobe",
            "not on PATH; scripts/install-deps.sh installs them",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let segments = make_segments(&src);
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let total: f64 = segments.iter().map(|(d, _)| d).sum();

    let local = LocalStore::new(dir.path().join("recordings")).expect("store");
    let root = local.root().to_owned();
    let store: DynStore = Arc::new(local);
    let catalog = Arc::new(EmbeddedCatalog::open(&dir.path().join("data")).expect("catalog"));
    let cfg = RecorderConfig {
        prefix: "rooms/".into(),
        poster: Some(Arc::new(FfmpegPoster::default())),
        ..RecorderConfig::new(dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store.clone(), catalog.clone())
        .await
        .expect("start");
    let t0 = std::time::SystemTime::now();
    rec.record(RecordEvent::SessionStarted {
        session_id: "s1".into(),
        room: "shows/lobby".into(),
        renditions: vec!["source".into(), "copy".into()],
        started_at: t0,
    });
    let mut offset = 0.0;
    for (seq, (duration, bytes)) in segments.iter().enumerate() {
        for rendition in ["source", "copy"] {
            rec.record(RecordEvent::SegmentClosed {
                session_id: "s1".into(),
                room: "shows/lobby".into(),
                rendition: rendition.into(),
                seq: seq as u64,
                duration: Duration::from_secs_f64(*duration),
                discontinuity: false,
                program_date_time: t0 + Duration::from_secs_f64(offset),
                bytes: bytes.clone(),
            });
        }
        offset += duration;
    }
    rec.record(RecordEvent::SessionEnded {
        session_id: "s1".into(),
        room: "shows/lobby".into(),
        started_at: t0,
        ended_at: t0 + Duration::from_secs_f64(offset),
        segments: segments.len() as u64,
        clean: true,
    });
    tokio::time::timeout(Duration::from_secs(30), rec.flush())
        .await
        .expect("flush");

    let listed = catalog.list("shows/lobby", 10, None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RecordingStatus::Complete);
    assert_eq!(listed[0].poster.as_deref(), Some("poster.jpg"));
    let jpeg = std::fs::read(root.join("rooms/shows/lobby/s1/poster.jpg")).expect("poster");
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");

    let tolerance = 2.1;
    let session_dir = root.join("rooms/shows/lobby/s1");
    for playlist in ["index.m3u8", "source/index.m3u8", "copy/index.m3u8"] {
        let got =
            ffprobe_duration(&session_dir.join(playlist).display().to_string()).expect("ffprobe");
        assert!(
            (got - total).abs() <= tolerance,
            "{playlist}: {got} s vs {total} s"
        );
    }

    // Through the origin's VOD proxy, as a player would.
    let app = router(ApiState {
        catalog: catalog.clone(),
        store: store.clone(),
        room: "shows/lobby".into(),
        origin_secret: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{addr}/recordings/s1/index.m3u8");
    let got = tokio::task::spawn_blocking(move || ffprobe_duration(&url))
        .await
        .expect("ffprobe task")
        .expect("ffprobe");
    assert!(
        (got - total).abs() <= tolerance,
        "via the API: {got} s vs {total} s"
    );
    server.abort();
}
