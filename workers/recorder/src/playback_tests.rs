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
    playlist::StreamAttributes,
    poster::FfmpegPoster,
    store::local::LocalStore,
    testing::{StaticServer, ffprobe_duration, ffprobe_variants},
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

/// The test video as the media worker would describe it.
fn attributes() -> StreamAttributes {
    StreamAttributes {
        codecs: Some("avc1.64000c,mp4a.40.2".into()),
        resolution: Some((160, 120)),
        frame_rate: Some(10.0),
    }
}

/// A finalised recording of [`make_segments`]' video as renditions `source` and `copy`,
/// session `s1` of room `shows/lobby`, in a local store under `dir` (the layout `roomcast dev`
/// writes).
struct Recorded {
    /// The store's root directory.
    root: std::path::PathBuf,
    /// `<root>/rooms/shows/lobby/s1`.
    session_dir: std::path::PathBuf,
    /// Seconds of media.
    total: f64,
    store: DynStore,
    catalog: Arc<EmbeddedCatalog>,
}

async fn record_session(dir: &std::path::Path) -> Recorded {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let segments = make_segments(&src);
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let total: f64 = segments.iter().map(|(d, _)| d).sum();

    let local = LocalStore::new(dir.join("recordings")).expect("store");
    let root = local.root().to_owned();
    let store: DynStore = Arc::new(local);
    let catalog = Arc::new(EmbeddedCatalog::open(&dir.join("data")).expect("catalog"));
    let cfg = RecorderConfig {
        prefix: "rooms/".into(),
        poster: Some(Arc::new(FfmpegPoster::default())),
        ..RecorderConfig::new(dir.join("spool"))
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
                init: None,
                attributes: attributes(),
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
    Recorded {
        session_dir: root.join("rooms/shows/lobby/s1"),
        root,
        total,
        store,
        catalog,
    }
}

/// ffmpeg and ffprobe are there, or the test says it skips (and fails in CI).
fn media_tools() -> bool {
    let ok = have("ffmpeg") && have("ffprobe");
    if !ok {
        roomcast_runtime::skip::missing(
            "ffmpeg/ffprobe",
            "not on PATH; scripts/install-deps.sh installs them",
        );
    }
    ok
}

#[tokio::test]
async fn a_recorded_session_plays_end_to_end_from_the_store_and_through_the_api() {
    if !media_tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Recorded {
        root,
        session_dir,
        total,
        store,
        catalog,
    } = record_session(dir.path()).await;

    let listed = catalog.list("shows/lobby", 10, None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RecordingStatus::Complete);
    assert_eq!(listed[0].poster.as_deref(), Some("poster.jpg"));
    let jpeg = std::fs::read(root.join("rooms/shows/lobby/s1/poster.jpg")).expect("poster");
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");

    let tolerance = 2.1;
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

/// Every URI in the session's playlists is relative: a player resolves it against the
/// playlist's own URL, whatever host and path prefix serve the bucket.
fn assert_relative_uris(session_dir: &std::path::Path) {
    let master = std::fs::read(session_dir.join("index.m3u8")).expect("master");
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("master playlist");
    assert!(!master.variants.is_empty());
    for variant in &master.variants {
        let uri = &variant.uri;
        assert!(
            !uri.contains("://") && !uri.starts_with('/'),
            "absolute URI {uri}"
        );
        let media = std::fs::read(session_dir.join(uri)).expect("media playlist");
        let media = m3u8_rs::parse_media_playlist_res(&media).expect("media playlist");
        for segment in &media.segments {
            let uri = &segment.uri;
            assert!(
                !uri.contains("://") && !uri.starts_with('/') && !uri.contains(".."),
                "absolute URI {uri}"
            );
        }
    }
}

#[tokio::test]
async fn a_finalised_recording_plays_from_a_plain_static_file_server() {
    if !media_tools() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = record_session(dir.path()).await;
    assert_relative_uris(&rec.session_dir);

    // The VOD master describes each variant as the live one does.
    let master = std::fs::read_to_string(rec.session_dir.join("index.m3u8")).expect("master");
    for needle in [
        "CODECS=\"avc1.64000c,mp4a.40.2\"",
        "RESOLUTION=160x120",
        "FRAME-RATE=10",
        "AVERAGE-BANDWIDTH=",
    ] {
        assert_eq!(master.matches(needle).count(), 2, "{needle} in\n{master}");
    }

    let Some(server) = StaticServer::start(&rec.root) else {
        roomcast_runtime::skip::missing(
            "python3 (http.server)",
            "the plain static file server this test serves the recording with",
        );
        return;
    };
    let url = format!(
        "http://127.0.0.1:{}/rooms/shows/lobby/s1/index.m3u8",
        server.port
    );
    let probe = |url: String| tokio::task::spawn_blocking(move || ffprobe_variants(&url));
    let variants = probe(url.clone())
        .await
        .expect("ffprobe task")
        .expect("every variant decodes from the static server");
    // 10 fps test video: every frame of every variant arrives.
    let frames = (rec.total * 10.0).round() as u64;
    assert_eq!(variants.len(), 2, "{variants:?}");
    for v in &variants {
        assert_eq!(v.height, Some(120), "{v:?}");
        assert_eq!(v.video_frames, frames, "{v:?}");
        assert!(v.audio_frames > 0, "{v:?}");
    }

    // The check itself fails when a file of the recording is missing.
    std::fs::remove_file(rec.session_dir.join("copy/1.ts")).expect("remove a segment");
    let broken = probe(url).await.expect("ffprobe task");
    assert!(
        broken.is_err(),
        "a missing segment went unnoticed: {broken:?}"
    );
}
