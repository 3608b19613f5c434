//! The `roomcast-media` binary records a session to a real S3 server (s3s, signatures
//! checked) and serves it back as a past broadcast: the in-cluster path from the operator's
//! WorkerConfig to objects in the bucket and the replay API on the origin.

mod common;

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use common::{Publisher, http_request, media_tools_available, wait_exit};
use roomcast_recorder::testing::{ACCESS_KEY, BUCKET, S3TestServer, SECRET_KEY};
use tokio::process::Command;

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_records_a_session_to_s3_and_serves_it_as_a_past_broadcast() {
    if !media_tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "test-stream-key-0123456789";
    std::fs::write(dir.path().join("stream-key"), key).expect("key");
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

    let (rtmp, http) = (free_addr(), free_addr());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_roomcast-media"))
        .arg("--config")
        .arg(&config_file)
        .args([
            "--rtmp-addr",
            &rtmp.to_string(),
            "--http-addr",
            &http.to_string(),
            "--metrics-addr",
            "",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("POD_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start roomcast-media");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(rtmp).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let publisher = Publisher {
        seconds: 8,
        ..Publisher::default()
    }
    .spawn(&format!("rtmp://{rtmp}/live/{key}"));
    assert!(
        wait_exit(publisher, Duration::from_secs(60)).await,
        "ffmpeg published"
    );

    // The session ends after the 1 s grace; then the recorder finalises it.
    let mut listing = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        listing = http_request(http, "GET", "/shows/lobby/recordings", &[])
            .await
            .text();
        if listing.contains(r#""status":"complete""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        listing.contains(r#""status":"complete""#),
        "catalog lists a complete session: {listing}"
    );
    let page: serde_json::Value = serde_json::from_str(&listing).expect("json");
    let session = page["recordings"][0]["sessionId"]
        .as_str()
        .expect("session id")
        .to_owned();

    // Objects are in the bucket under the documented layout.
    let objects = files_under(&s3.dir.path().join(BUCKET));
    let prefix = format!("rooms/shows/lobby/{session}/");
    for expected in ["index.m3u8", "source/index.m3u8", "session.json"] {
        assert!(
            objects.contains(&format!("{prefix}{expected}")),
            "{expected} missing: {objects:?}"
        );
    }
    let segments = objects
        .iter()
        .filter(|o| o.starts_with(&format!("{prefix}source/")) && o.ends_with(".ts"))
        .count();
    assert!(segments >= 3, "segments uploaded: {objects:?}");

    // The VOD plays through the origin, for about as long as was published.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(format!(
            "http://{http}/shows/lobby/recordings/{session}/index.m3u8"
        ))
        .output()
        .expect("ffprobe");
    let duration: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    assert!(
        (duration - 8.0).abs() <= 2.5,
        "VOD duration {duration} s for 8 s published"
    );

    let _ = worker.start_kill();
    let _ = worker.wait().await;
}
