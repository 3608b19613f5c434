//! `roomcast dev` end to end, with real ffmpeg and a real S3 server: Ctrl-C during a live
//! session ends it cleanly and its recording is finalised in the bucket before the process
//! exits.

use std::{process::Stdio, time::Duration};

use roomcast_recorder::testing::{ACCESS_KEY, BUCKET, S3TestServer, SECRET_KEY};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// ffmpeg publishes; `roomcast dev` transcodes with GStreamer. A skip notice when either is
/// missing, a failure under `CI` (see `roomcast_runtime::skip`).
fn tools_available() -> bool {
    let mut missing: Vec<String> = roomcast_media::transcode::pipeline::missing_elements()
        .into_iter()
        .map(|e| format!("GStreamer element {e}"))
        .collect();
    let ffmpeg = std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ffmpeg {
        missing.push("ffmpeg".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    roomcast_runtime::skip::missing(
        &missing.join(", "),
        "the test publishes with ffmpeg to roomcast dev, which transcodes with GStreamer (run scripts/install-deps.sh)",
    );
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_live_session_finalises_its_recording_in_s3() {
    if !tools_available() {
        return;
    }
    let s3 = S3TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rooms = dir.path().join("rooms.yaml");
    std::fs::write(
        &rooms,
        "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby, namespace: shows}\nspec:\n  transcode: {renditions: [{name: source}]}\n",
    )
    .expect("rooms");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["dev", "-f"])
        .arg(&rooms)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0"])
        .args(["--rtmps-addr", "127.0.0.1:0"])
        .args([
            "--s3-bucket",
            BUCKET,
            "--s3-region",
            "us-east-1",
            "--s3-prefix",
            "rooms/",
        ])
        .args(["--s3-endpoint", &s3.endpoint()])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start roomcast dev");

    // The banner names the RTMP server and the stream key.
    let mut lines = BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let mut publish_url = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        if let Some(rest) = line.trim().strip_prefix("OBS     server ") {
            let mut parts = rest.split_whitespace();
            let server = parts.next().expect("server");
            let key = parts.nth(2).expect("key");
            publish_url = Some(format!("{server}/{key}"));
            break;
        }
    }
    let publish_url = publish_url.expect("the banner has the OBS settings");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Publish for longer than the test waits: the session is live when Ctrl-C comes.
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-f", "flv", &publish_url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        publisher.try_wait().expect("ffmpeg state").is_none(),
        "still publishing"
    );

    // Ctrl-C.
    let pid = dev.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), dev.wait())
        .await
        .expect("roomcast dev stops within a minute")
        .expect("exit status");
    assert!(exit.success(), "clean exit: {exit}");
    let _ = publisher.kill().await;

    // The bucket holds the finalised session: session.json says complete.
    let sessions: Vec<String> = s3
        .objects()
        .into_iter()
        .filter(|k| k.ends_with("/session.json"))
        .collect();
    assert_eq!(
        sessions.len(),
        1,
        "one session recorded: {:?}",
        s3.objects()
    );
    assert!(
        sessions[0].starts_with("rooms/shows/lobby/"),
        "{sessions:?}"
    );
    let session: serde_json::Value =
        serde_json::from_slice(&s3.read(&sessions[0]).expect("read")).expect("json");
    assert_eq!(session["status"], "complete", "{session}");
    let duration = session["durationSeconds"].as_f64().unwrap_or_default();
    assert!(duration >= 5.0, "about 8 s recorded, got {duration}");
}
