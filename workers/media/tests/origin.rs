//! The origin's edge against hostile requests, without sockets or publishers: the HLS routes
//! and the recordings API mounted next to them (composed as the worker composes them) refuse
//! a request without the room's origin secret alike, and every error they answer carries
//! `Cache-Control: no-store`, so a CDN never keeps one for its default time.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::connect_info::MockConnectInfo};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use roomcast_crds::worker_config::WorkerConfig;
use roomcast_media::{
    MediaOptions, MediaServer, RoomConfig,
    mux::fragment::{ClosedFragment, FragmentSink},
    origin::hls::{self, ORIGIN_SECRET_HEADER},
    recording::{RecordedRoom, RoomRecorder},
    room::{
        Room,
        session::{EpochSink, Session},
    },
};
use roomcast_recorder::{
    RecorderConfig, catalog::embedded::EmbeddedCatalog, store::local::LocalStore,
};
use tower::ServiceExt;

const SECRET: &str = "cdn-secret-0123456789";

/// One recording room `shows/lobby` with an origin secret; HLS and the replay API on one
/// router, as `app::run` composes them.
async fn origin(dir: &std::path::Path) -> (RoomRecorder, Router) {
    let (recorder, app, _server) = origin_server(dir).await;
    (recorder, app)
}

/// [`origin`], and the server behind it for tests that start sessions themselves.
async fn origin_server(dir: &std::path::Path) -> (RoomRecorder, Router, Arc<MediaServer>) {
    std::fs::write(dir.join("key"), "stream-key-0123456789").expect("key");
    std::fs::write(dir.join("origin"), SECRET).expect("origin secret");
    let worker: WorkerConfig = serde_yaml::from_str(&format!(
        r#"room: {{namespace: shows, name: lobby}}
ingest: {{streamKeyFile: {dir}/key, maxBitrateKbps: 8000, reconnectGraceSeconds: 1}}
transcode: {{segmentSeconds: 2, dvrWindowSeconds: 60, renditions: [{{name: source}}]}}
recording: {{bucket: local, prefix: rooms/, region: "", endpoint: "", forcePathStyle: false, renditions: [], spoolDir: {dir}/spool, spoolSizeMib: 64}}
playback: {{pathPrefix: /shows/lobby, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 86400, originSecretFile: {dir}/origin}}
"#,
        dir = dir.display()
    ))
    .expect("worker config");
    let server = MediaServer::new(
        vec![RoomConfig::from_worker_config(&worker).expect("room")],
        MediaOptions {
            speed_preset: "ultrafast".into(),
            limits: Default::default(),
        },
    )
    .expect("server");
    let recorder = RoomRecorder::start(
        &server,
        &[RecordedRoom::of(&worker)],
        RecorderConfig::new(dir.join("spool")),
        Arc::new(LocalStore::new(dir.join("recordings")).expect("store")),
        Arc::new(EmbeddedCatalog::open(dir).expect("catalog")),
    )
    .await
    .expect("recorder");
    let app = hls::router(server.clone())
        .merge(recorder.routes.clone())
        .layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
    (recorder, app, server)
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    secret: Option<&[u8]>,
) -> (StatusCode, String, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(s) = secret {
        req = req.header(
            ORIGIN_SECRET_HEADER,
            http::HeaderValue::from_bytes(s).expect("header value"),
        );
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let cache = resp
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, cache, String::from_utf8_lossy(&body).into_owned())
}

const ROOM_PATHS: [&str; 7] = [
    "/shows/lobby/hls/index.m3u8",
    "/shows/lobby/hls/source/index.m3u8",
    "/shows/lobby/hls/source/0123456789abcdef-0.ts",
    "/shows/lobby/status",
    "/shows/lobby/recordings",
    "/shows/lobby/recordings/s1",
    "/shows/lobby/recordings/s1/index.m3u8",
];

#[tokio::test]
async fn hls_and_recordings_refuse_a_missing_or_wrong_origin_secret_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_recorder, app) = origin(dir.path()).await;
    let long = vec![b'a'; 60 * 1024];
    let near = format!("{SECRET} ");
    for path in ROOM_PATHS {
        for presented in [
            None,
            Some(&b""[..]),
            Some(b"wrong"),
            Some(&SECRET.as_bytes()[..SECRET.len() - 1]),
            Some(near.as_bytes()),
            Some(&long[..]),
            Some(b"\xff\xfe"),
        ] {
            let (status, cache, body) = send(&app, "GET", path, presented).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{path} {presented:?}: {body}"
            );
            assert_eq!(cache, "no-store", "{path}");
            assert!(body.contains("X-Origin-Secret"), "{path}: {body}");
        }
    }
    // With the secret: the idle room answers (503, uncacheable) and the replay API lists.
    let (status, cache, _) = send(&app, "GET", ROOM_PATHS[0], Some(SECRET.as_bytes())).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "no-store")
    );
    let (status, _, body) = send(&app, "GET", ROOM_PATHS[4], Some(SECRET.as_bytes())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn hostile_names_and_odd_methods_get_errors_no_cdn_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_recorder, app) = origin(dir.path()).await;
    let secret = Some(SECRET.as_bytes());
    for path in [
        "/shows/lobby/hls/..%2F..%2Fetc/index.m3u8",
        "/shows/lobby/hls/%2e%2e/index.m3u8",
        "/shows/lobby/hls/source/..%2F..%2Fkey",
        "/shows/lobby/hls/source/-1.ts",
        "/shows/lobby/hls/source/18446744073709551616.ts",
        "/shows/lobby/hls/source/%00.ts",
        "/shows/lobby/hls/source/0.ts%00",
        "/shows/lobby/hls/%ff/0.ts",
        "/shows/%2e%2e/hls/index.m3u8",
        "/shows/lobby%2F..%2Fother/hls/index.m3u8",
        "/shows/lobby/recordings/..%2F..%2Fkey",
        "/shows/lobby/recordings/s1/..%2F..%2F..%2Fkey",
        "/shows/lobby/recordings/s1/source/%2e%2e/%2e%2e/x.ts",
        "/shows/lobby/recordings?limit=-1",
        "/shows/lobby/recordings?before=x",
    ] {
        let (status, cache, body) = send(&app, "GET", path, secret).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{path}: {status} {body}"
        );
        assert!(!body.contains("stream-key"), "{path}: {body}");
        assert_eq!(cache, "no-store", "{path}: {status}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"] {
        for path in ROOM_PATHS {
            let (status, cache, _) = send(&app, method, path, secret).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(cache, "no-store", "{method} {path}");
        }
    }
}

/// Start a session of `room` as an accepted publish does and close one MPEG-TS segment of
/// `bytes` in its source rendition; no publisher socket, so the test sees names, not timing.
fn session_with_one_segment(room: &Room, conn: u64, bytes: Bytes) -> Arc<Session> {
    let publish = room.begin_publish(conn).expect("publish");
    let sink = EpochSink {
        session: publish.session.clone(),
        started: chrono::Utc::now(),
        clock: std::time::Instant::now(),
    };
    sink.fragment_closed(
        ClosedFragment {
            rendition: 0,
            bytes,
            start: Duration::ZERO,
            end: Duration::from_secs(2),
        },
        None,
    );
    publish.session
}

/// Segment names are the session's: the next session of the room answers yesterday's names
/// with an uncacheable 404, never with its own bytes, and names that are not exactly a name
/// of the live session are refused alike.
#[tokio::test]
async fn a_name_of_another_session_or_a_hostile_name_is_a_404_no_cdn_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_recorder, app, server) = origin_server(dir.path()).await;
    let room = server
        .rooms
        .by_path("shows", "lobby")
        .expect("room")
        .clone();
    let secret = Some(SECRET.as_bytes());
    let base = "/shows/lobby/hls/source";
    let first = session_with_one_segment(&room, 1, Bytes::from(vec![0x47; 188]));
    let token = first.token.to_string();
    let (status, _, playlist) = send(&app, "GET", &format!("{base}/index.m3u8"), secret).await;
    assert_eq!(status, StatusCode::OK, "{playlist}");
    assert!(
        playlist.contains(&format!("\n{token}-0.ts\n")),
        "{playlist}"
    );
    let yesterday = format!("{base}/{token}-0.ts");
    let (status, cache, _) = send(&app, "GET", &yesterday, secret).await;
    assert_eq!(
        (status, cache.as_str()),
        (StatusCode::OK, "public, max-age=86400, immutable")
    );

    let upper = token.to_uppercase();
    let (short, long) = (&token[1..], format!("{token}0"));
    let hostile = [
        "0.ts".to_owned(),
        format!("{short}-0.ts"),
        format!("{long}-0.ts"),
        format!("{upper}-0.ts"),
        format!("{}g-0.ts", &token[1..]),
        format!("{}%2F-0.ts", &token[1..]),
        format!("{token}--0.ts"),
        format!("{token}-00.ts"),
        format!("{token}-+0.ts"),
        format!("{token}0.ts"),
        format!("{token}-0.ts%00"),
        format!("{token}-0.m4s"),
        format!("{token}-0.0.m4s"),
        format!("{token}-init-1.mp4"),
        format!("..%2F..%2F{token}-0.ts"),
        format!("{token}-..%2F..%2Fkey"),
        format!("%2e%2e%2f{token}-0.ts"),
        // Well formed, but no session of this room has this token.
        "ffffffffffffffff-0.ts".to_owned(),
        "0000000000000000-0.ts".to_owned(),
    ];
    for name in &hostile {
        let (status, cache, body) = send(&app, "GET", &format!("{base}/{name}"), secret).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
        assert_eq!(cache, "no-store", "{name}");
    }

    // The session ends; the room's next one numbers its segments from 0 again.
    let generation = room.publisher_left(1, true).expect("publisher");
    room.end_session_if(generation).await;
    let second = session_with_one_segment(&room, 2, Bytes::from(vec![0x47; 376]));
    assert_ne!(second.token, first.token);
    let (status, cache, body) = send(&app, "GET", &yesterday, secret).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(cache, "no-store");
    assert!(body.contains("another session"), "{body}");
    let (status, _, body) = send(
        &app,
        "GET",
        &format!("{base}/{}-0.ts", second.token),
        secret,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 376, "today's bytes under today's name");
}

#[tokio::test]
async fn a_rotated_origin_secret_takes_effect_without_a_restart_on_hls_and_recordings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_recorder, app) = origin(dir.path()).await;
    let status = "/shows/lobby/status";
    let recordings = "/shows/lobby/recordings";
    for path in [status, recordings] {
        let (code, _, _) = send(&app, "GET", path, Some(SECRET.as_bytes())).await;
        assert_eq!(code, StatusCode::OK, "{path} before rotation");
    }
    // The kubelet swaps the mounted file; the worker looks again within its reload interval.
    let rotated = "cdn-secret-rotated-9876543210";
    std::fs::write(dir.path().join("origin"), rotated).expect("rotate");
    tokio::time::sleep(
        roomcast_runtime::secret::SECRET_RELOAD_INTERVAL + std::time::Duration::from_millis(200),
    )
    .await;
    for path in [status, recordings] {
        let (code, _, _) = send(&app, "GET", path, Some(rotated.as_bytes())).await;
        assert_eq!(code, StatusCode::OK, "{path} with the new secret");
        let (code, cache, _) = send(&app, "GET", path, Some(SECRET.as_bytes())).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{path} with the old secret");
        assert_eq!(cache, "no-store");
    }
}
