//! The `roomcast-media` binary records to a real S3 server (s3s, signatures checked) from the
//! operator's WorkerConfig, and serves recordings back as past broadcasts. Faults are real:
//! the S3 server goes away for 20 s, the worker process is killed with SIGKILL.

mod common;

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use common::{
    Publisher, assert_h264_and_aac, http_request, media_tools_available, metric,
    probe_video_frames, wait_exit, write_temp,
};
use roomcast_recorder::testing::{
    ACCESS_KEY, BUCKET, DecodedVariant, S3TestServer, SECRET_KEY, StaticServer, ffprobe_duration,
    ffprobe_variants,
};
use tokio::process::{Child, Command};

const KEY: &str = "test-stream-key-0123456789";

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A room directory (config, key, S3 credentials, spool, data) and the worker serving it.
struct Worker {
    dir: tempfile::TempDir,
    config: PathBuf,
    rtmp: SocketAddr,
    http: SocketAddr,
    process: Option<Child>,
}

impl Worker {
    fn new(s3: &S3TestServer) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stream-key"), KEY).expect("key");
        let creds = dir.path().join("s3");
        std::fs::create_dir_all(&creds).expect("creds dir");
        std::fs::write(creds.join("AWS_ACCESS_KEY_ID"), ACCESS_KEY).expect("id");
        std::fs::write(creds.join("AWS_SECRET_ACCESS_KEY"), SECRET_KEY).expect("secret");
        let config = format!(
            r#"room: {{namespace: shows, name: lobby}}
ingest: {{streamKeyFile: {dir}/stream-key, maxBitrateKbps: 8000, reconnectGraceSeconds: 1}}
transcode:
  segmentSeconds: 2
  dvrWindowSeconds: 60
  renditions: [{{name: source}}]
recording:
  bucket: {BUCKET}
  prefix: rooms/
  region: us-east-1
  endpoint: {endpoint}
  forcePathStyle: true
  credentialsDir: {creds}
  spoolDir: {dir}/spool
  spoolSizeMib: 256
playback: {{pathPrefix: /shows/lobby, playlistMaxAgeSeconds: 1, segmentMaxAgeSeconds: 86400}}
"#,
            dir = dir.path().display(),
            endpoint = s3.endpoint(),
            creds = creds.display(),
        );
        let config_file = dir.path().join("room.yaml");
        std::fs::write(&config_file, config).expect("config");
        Worker {
            dir,
            config: config_file,
            rtmp: free_addr(),
            http: free_addr(),
            process: None,
        }
    }

    async fn start(&mut self) {
        let process = Command::new(env!("CARGO_BIN_EXE_roomcast-media"))
            .arg("--config")
            .arg(&self.config)
            .args(["--rtmp-addr", &self.rtmp.to_string()])
            .args(["--http-addr", &self.http.to_string(), "--metrics-addr", ""])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .env_remove("POD_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start roomcast-media");
        self.process = Some(process);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(self.http).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Change the room's config before [`Worker::start`].
    fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(text.contains(from), "{from:?} in {text}");
        std::fs::write(&self.config, text.replace(from, to)).expect("config");
    }

    /// Make the room low latency (CMAF) with a two-rung ladder, publisher drops shorter than
    /// `grace_seconds` continuing the session; before [`Worker::start`].
    fn low_latency(&self, grace_seconds: u32) {
        self.edit_config(
            "segmentMaxAgeSeconds: 86400}",
            "segmentMaxAgeSeconds: 86400, latency: low}",
        );
        self.edit_config(
            "renditions: [{name: source}]",
            "renditions: [{name: source}, {name: 144p, height: 144, videoKbps: 150, audioKbps: 64}]",
        );
        self.edit_config(
            "reconnectGraceSeconds: 1}",
            &format!("reconnectGraceSeconds: {grace_seconds}}}"),
        );
    }

    /// Wait until the room's live HLS serves a media playlist with a segment.
    async fn wait_live(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = http_request(self.http, "GET", "/shows/lobby/hls/source/index.m3u8", &[]).await;
            if r.status == 200 && (r.text().contains(".ts") || r.text().contains(".m4s")) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no live HLS within {timeout:?}: {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn exited(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| matches!(p.try_wait(), Ok(Some(_))))
    }

    /// SIGKILL: no shutdown code runs, the spool is left as it is.
    async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().await.expect("SIGKILL");
        }
    }

    fn publish(&self, seconds: u32) -> Child {
        Publisher {
            seconds,
            ..Publisher::default()
        }
        .spawn(&format!("rtmp://{}/live/{KEY}", self.rtmp))
    }

    /// Wait until the catalog lists a session with `status`; returns the listing's entry.
    async fn wait_for_session(&self, status: &str, timeout: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut listing = String::new();
        while tokio::time::Instant::now() < deadline {
            listing = http_request(self.http, "GET", "/shows/lobby/recordings", &[])
                .await
                .text();
            if let Ok(page) = serde_json::from_str::<serde_json::Value>(&listing)
                && let Some(entry) = page["recordings"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["status"] == status))
            {
                return entry.clone();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("no {status} session listed within {timeout:?}: {listing}");
    }

    /// Publish for `seconds` and wait for ffmpeg to finish.
    async fn published(&self, seconds: u32) {
        assert!(
            wait_exit(self.publish(seconds), Duration::from_secs(60)).await,
            "ffmpeg published"
        );
    }

    /// The id of the session the catalog lists `complete`, once it does.
    async fn completed_session(&self, timeout: Duration) -> String {
        let entry = self.wait_for_session("complete", timeout).await;
        entry["sessionId"].as_str().expect("session id").to_owned()
    }

    /// Duration of a recorded session, played through the origin by ffprobe.
    fn vod_duration(&self, session: &str) -> f64 {
        ffprobe_duration(&format!(
            "http://{}/shows/lobby/recordings/{session}/index.m3u8",
            self.http
        ))
        .unwrap_or(0.0)
    }
}

fn session_objects(s3: &S3TestServer, session: &str) -> Vec<String> {
    let prefix = format!("rooms/shows/lobby/{session}/");
    s3.objects()
        .into_iter()
        .filter_map(|o| o.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// Every one of `expected` is among a session's `objects`.
fn assert_stored(objects: &[String], expected: &[&str]) {
    for key in expected {
        assert!(
            objects.iter().any(|o| o == key),
            "{key} missing: {objects:?}"
        );
    }
}

fn playlist_segments(s3: &S3TestServer, session: &str) -> Vec<String> {
    let key = format!("rooms/shows/lobby/{session}/source/index.m3u8");
    let playlist = s3.read(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
    String::from_utf8_lossy(&playlist)
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_records_a_session_to_s3_and_serves_it_as_a_past_broadcast() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let mut worker = Worker::new(&s3);
    worker.start().await;
    worker.published(8).await;

    // The session ends after the 1 s grace; then the recorder finalises it.
    let session = worker.completed_session(Duration::from_secs(30)).await;

    let objects = session_objects(&s3, &session);
    // poster.jpg: made by the default poster maker (GStreamer, see recording::default_poster).
    assert_stored(
        &objects,
        &[
            "index.m3u8",
            "source/index.m3u8",
            "session.json",
            "poster.jpg",
        ],
    );
    assert!(playlist_segments(&s3, &session).len() >= 3, "{objects:?}");

    // The VOD master describes every variant as the live master does.
    let key = format!("rooms/shows/lobby/{session}/index.m3u8");
    let master = s3.read(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("VOD master");
    assert!(!master.variants.is_empty());
    for v in &master.variants {
        let codecs = v.codecs.as_deref().unwrap_or_default();
        assert!(
            codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
            "{v:?}"
        );
        assert!(
            v.resolution.is_some() && v.average_bandwidth.is_some(),
            "{v:?}"
        );
    }
    let source = &master.variants[0];
    assert_eq!(source.uri, "source/index.m3u8");
    assert_eq!(
        source.resolution.as_ref().map(|r| (r.width, r.height)),
        Some((320, 240))
    );
    assert_eq!(source.frame_rate, Some(15.0), "{source:?}");

    let duration = worker.vod_duration(&session);
    assert!(
        (duration - 8.0).abs() <= 2.5,
        "VOD duration {duration} s for 8 s published"
    );

    // The recorder's figures are on the worker's /metrics, labelled with their room.
    let metrics = http_request(worker.http, "GET", "/metrics", &[])
        .await
        .text();
    let uploaded = metric(
        &metrics,
        r#"roomcast_media_recorder_segments_uploaded_total{room="shows/lobby"}"#,
    );
    assert!(uploaded >= 3.0, "segments uploaded {uploaded}:\n{metrics}");
    worker.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_gone_for_20_seconds_loses_and_duplicates_nothing() {
    if !media_tools_available() {
        return;
    }
    let mut s3 = S3TestServer::start().await;
    let mut worker = Worker::new(&s3);
    worker.start().await;
    let publisher = worker.publish(30);
    tokio::time::sleep(Duration::from_secs(5)).await;
    s3.stop().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    s3.restart().await;
    assert!(
        wait_exit(publisher, Duration::from_secs(60)).await,
        "ffmpeg published"
    );

    let session = worker.completed_session(Duration::from_secs(90)).await;
    let listed = playlist_segments(&s3, &session);
    let stored: Vec<String> = session_objects(&s3, &session)
        .into_iter()
        .filter_map(|o| o.strip_prefix("source/").map(str::to_owned))
        .filter(|o| o.ends_with(".ts"))
        .collect();
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        listed.len(),
        "no segment listed twice: {listed:?}"
    );
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    assert_eq!(
        stored_sorted, unique,
        "every listed segment stored, nothing extra"
    );
    assert!(
        listed.len() >= 12,
        "about 15 segments of 2 s for 30 s: {listed:?}"
    );
    let duration = worker.vod_duration(&session);
    assert!(
        (duration - 30.0).abs() <= 3.0,
        "VOD duration {duration} s for 30 s published"
    );
    worker.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_session_finalises_it_as_interrupted_on_restart() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let mut worker = Worker::new(&s3);
    worker.start().await;
    let publisher = worker.publish(30);
    tokio::time::sleep(Duration::from_secs(8)).await;
    worker.kill().await;
    // ffmpeg fails when the server goes away.
    let _ = wait_exit(publisher, Duration::from_secs(30)).await;

    worker.start().await;
    let entry = worker
        .wait_for_session("interrupted", Duration::from_secs(60))
        .await;
    let session = entry["sessionId"].as_str().expect("session id").to_owned();
    let segments = playlist_segments(&s3, &session);
    assert!(
        segments.len() >= 2,
        "what was recorded before the kill is listed: {segments:?}"
    );
    let duration = worker.vod_duration(&session);
    assert!(
        duration >= 3.0,
        "the interrupted session plays ({duration} s)"
    );
    worker.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_at_start_leaves_live_up_and_later_segments_land_once_it_answers() {
    if !media_tools_available() {
        return;
    }
    let mut s3 = S3TestServer::start().await;
    s3.stop().await;
    let mut worker = Worker::new(&s3);
    worker.start().await;
    let publisher = worker.publish(20);
    worker.wait_live(Duration::from_secs(20)).await;
    assert!(!worker.exited(), "the worker runs while S3 is down");
    // Health says why recording is degraded (the room status carries it in a cluster).
    s3.restart().await;
    assert!(
        wait_exit(publisher, Duration::from_secs(60)).await,
        "ffmpeg published"
    );
    let session = worker.completed_session(Duration::from_secs(90)).await;
    let segments = playlist_segments(&s3, &session);
    assert!(
        segments.len() >= 5,
        "segments stored after S3 came up: {segments:?}"
    );
    worker.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_prefix_or_an_unreachable_mongodb_leaves_the_room_live() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    // A prefix without its trailing '/': recording is off, live is not.
    let mut worker = Worker::new(&s3);
    worker.edit_config("prefix: rooms/", "prefix: rooms");
    worker.start().await;
    let publisher = worker.publish(6);
    worker.wait_live(Duration::from_secs(20)).await;
    assert!(!worker.exited(), "the worker runs with a bad prefix");
    let _ = wait_exit(publisher, Duration::from_secs(30)).await;
    worker.kill().await;

    // A MongoDB catalog nobody answers at: live, and the replay API fails without caching.
    let mut worker = Worker::new(&s3);
    let uri = worker.dir.path().join("mongodb-uri");
    let closed = free_addr();
    std::fs::write(
        &uri,
        format!("mongodb://{closed}/roomcast?serverSelectionTimeoutMS=300&connectTimeoutMS=300"),
    )
    .expect("uri");
    worker.edit_config(
        "playback:",
        &format!("mongodbUriFile: {}\nplayback:", uri.display()),
    );
    worker.start().await;
    let publisher = worker.publish(6);
    worker.wait_live(Duration::from_secs(20)).await;
    assert!(!worker.exited(), "the worker runs without its MongoDB");
    let listing = http_request(worker.http, "GET", "/shows/lobby/recordings", &[]).await;
    assert!(
        listing.status >= 500,
        "{} {}",
        listing.status,
        listing.text()
    );
    assert_eq!(listing.header("cache-control"), Some("no-store"));
    let _ = wait_exit(publisher, Duration::from_secs(30)).await;
    worker.kill().await;
}

/// Every variant of a recording's master at `url`, decoded by ffprobe (off the runtime).
async fn decode_variants(url: String) -> Vec<DecodedVariant> {
    tokio::task::spawn_blocking(move || ffprobe_variants(&url))
        .await
        .expect("ffprobe task")
        .unwrap_or_else(|e| panic!("every variant decodes: {e}"))
}

/// A recorded session's `<rendition>/index.m3u8`, from the bucket.
fn media_playlist(s3: &S3TestServer, session: &str, rendition: &str) -> String {
    let key = format!("rooms/shows/lobby/{session}/{rendition}/index.m3u8");
    String::from_utf8_lossy(&s3.read(&key).unwrap_or_else(|e| panic!("{key}: {e}"))).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_latency_session_is_recorded_as_cmaf_and_plays_from_the_api_and_the_bucket() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let mut worker = Worker::new(&s3);
    worker.low_latency(1);
    worker.start().await;
    worker.published(8).await;
    let session = worker.completed_session(Duration::from_secs(30)).await;

    let objects = session_objects(&s3, &session);
    assert_stored(
        &objects,
        &[
            "index.m3u8",
            "session.json",
            "poster.jpg",
            "source/index.m3u8",
            "source/init-1.mp4",
            "144p/index.m3u8",
            "144p/init-1.mp4",
        ],
    );
    assert!(!objects.iter().any(|o| o.ends_with(".ts")), "{objects:?}");
    for rendition in ["source", "144p"] {
        let text = media_playlist(&s3, &session, rendition);
        assert!(text.contains("#EXT-X-VERSION:7"), "{text}");
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
        // One publisher connection, one init, mapped before the first segment.
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        let map = text.find("#EXT-X-MAP:URI=\"init-1.mp4\"").expect(&text);
        let first = text.find(".m4s").expect(&text);
        assert!(map < first, "{text}");
        let segments = text.lines().filter(|l| l.ends_with(".m4s")).count();
        assert!(segments >= 3, "{text}");
        for line in text.lines().filter(|l| l.ends_with(".m4s")) {
            assert!(
                objects.contains(&format!("{rendition}/{line}")),
                "{line} listed, not stored: {objects:?}"
            );
        }
    }
    // The VOD master describes both variants as the live one does.
    let master = s3
        .read(&format!("rooms/shows/lobby/{session}/index.m3u8"))
        .expect("master");
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("VOD master");
    let heights: Vec<_> = master
        .variants
        .iter()
        .map(|v| v.resolution.as_ref().map(|r| r.height))
        .collect();
    assert_eq!(heights, [Some(240), Some(144)], "{master:?}");
    assert!(
        master
            .variants
            .iter()
            .all(|v| v.codecs.as_deref().is_some_and(|c| c.starts_with("avc1.")))
    );

    // Through the recordings API: content types and cache headers a CDN keeps.
    for (file, content_type) in [
        ("source/init-1.mp4", "video/mp4"),
        ("source/0.m4s", "video/iso.segment"),
    ] {
        let path = format!("/shows/lobby/recordings/{session}/{file}");
        let r = http_request(worker.http, "GET", &path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert_eq!(
            r.header("cache-control"),
            Some(roomcast_recorder::api::SEGMENT_CACHE_CONTROL),
            "{path}"
        );
    }
    let via_api = decode_variants(format!(
        "http://{}/shows/lobby/recordings/{session}/index.m3u8",
        worker.http
    ))
    .await;
    assert_eq!(via_api.len(), 2, "{via_api:?}");
    for (v, height) in via_api.iter().zip([240, 144]) {
        assert_eq!(v.height, Some(height), "{v:?}");
        // 8 s at 15 fps, give or take the segment cut at the end.
        assert!(v.video_frames >= 90, "{v:?}");
        assert!(v.audio_frames > 0, "{v:?}");
    }

    // Straight from the bucket's directory, with no roomcast process in the path.
    worker.kill().await;
    let server = StaticServer::start(&s3.dir.path().join(BUCKET)).expect("python3 http.server");
    let from_bucket = decode_variants(format!(
        "http://127.0.0.1:{}/rooms/shows/lobby/{session}/index.m3u8",
        server.port
    ))
    .await;
    assert_eq!(from_bucket, via_api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_latency_reconnect_within_grace_is_recorded_with_a_second_init_and_decodes() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let mut worker = Worker::new(&s3);
    worker.low_latency(4);
    worker.edit_config(
        "renditions: [{name: source}, {name: 144p, height: 144, videoKbps: 150, audioKbps: 64}]",
        "renditions: [{name: source}]",
    );
    worker.start().await;
    for _ in 0..2 {
        worker.published(4).await;
    }
    let session = worker.completed_session(Duration::from_secs(30)).await;
    let listing = http_request(worker.http, "GET", "/shows/lobby/recordings", &[])
        .await
        .text();
    assert_eq!(
        listing.matches("\"sessionId\"").count(),
        1,
        "one session: {listing}"
    );

    let text = media_playlist(&s3, &session, "source");
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    let (before, after) = text
        .split_once("#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXT-X-DISCONTINUITY\n")
        .expect(&text);
    assert!(
        before.contains("#EXT-X-MAP:URI=\"init-1.mp4\"") && !before.contains("DISCONTINUITY"),
        "{text}"
    );
    assert!(after.contains(".m4s"), "{text}");
    let objects = session_objects(&s3, &session);
    assert_stored(&objects, &["source/init-1.mp4", "source/init-2.mp4"]);

    // Each connection's segments decode after their own init, fetched through the recordings
    // API as a player would. (ffprobe reads one stream across a discontinuity as one timeline
    // and warns about the restart, so each side is probed on its own, as the live test does.)
    let tmp = tempfile::tempdir().expect("tmp");
    for (init, side) in [("init-1.mp4", before), ("init-2.mp4", after)] {
        let get = |file: String| {
            let path = format!("/shows/lobby/recordings/{session}/source/{file}");
            async move {
                let r = http_request(worker.http, "GET", &path, &[]).await;
                assert_eq!(r.status, 200, "{path}");
                r.body
            }
        };
        let mut file = get(init.to_owned()).await;
        for uri in side.lines().filter(|l| l.ends_with(".m4s")) {
            file.extend_from_slice(&get(uri.to_owned()).await);
        }
        let path = write_temp(tmp.path(), init, &file);
        assert_h264_and_aac(&path, 240, init);
        let frames = probe_video_frames(&path);
        assert!(frames.first().is_some_and(|f| f.1), "{init}: {frames:?}");
        // A 4 s publish at 15 fps, give or take the last segment's cut.
        assert!(frames.len() >= 40, "{init}: {} frames", frames.len());
    }
    worker.kill().await;
}
