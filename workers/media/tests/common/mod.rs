//! Test harness: a real `MediaServer` on 127.0.0.1:0, real ffmpeg publishers, a tiny HTTP
//! client, ffprobe helpers. Tests skip (with a message) when ffmpeg, ffprobe or a GStreamer
//! element is missing, and fail instead under `CI`, which installs them all.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_crds::{Latency, Rendition, RoomIdentity};
use roomcast_media::{MediaOptions, MediaServer, RoomConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// True when everything the media tests need is installed. Otherwise a skip notice, or a
/// failure under `CI` (see `roomcast_runtime::skip`).
pub fn media_tools_available() -> bool {
    let mut missing: Vec<String> = roomcast_media::transcode::pipeline::missing_elements()
        .into_iter()
        .map(|e| format!("GStreamer element {e}"))
        .collect();
    for tool in ["ffmpeg", "ffprobe"] {
        let ok = std::process::Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing.push(tool.to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    roomcast_runtime::skip::missing(
        &missing.join(", "),
        "the media tests publish with ffmpeg and transcode with GStreamer (run scripts/install-deps.sh)",
    );
    false
}

pub fn rung(name: &str, height: u32, kbps: u32) -> Rendition {
    Rendition {
        name: name.into(),
        height: Some(height),
        video_kbps: Some(kbps),
        audio_kbps: Some(64),
    }
}

pub fn source() -> Rendition {
    Rendition {
        name: "source".into(),
        height: None,
        video_kbps: None,
        audio_kbps: None,
    }
}

/// One room of a test server.
pub struct RoomSpec {
    pub namespace: &'static str,
    pub name: &'static str,
    pub key: &'static str,
    pub segment_seconds: u32,
    pub dvr_window_seconds: u32,
    pub grace_seconds: u32,
    pub renditions: Vec<Rendition>,
    pub origin_secret: Option<&'static str>,
    pub max_bitrate_kbps: u32,
    pub latency: Latency,
    pub part_target: Duration,
}

impl RoomSpec {
    pub fn new(name: &'static str, key: &'static str) -> Self {
        RoomSpec {
            namespace: "shows",
            name,
            key,
            segment_seconds: 1,
            dvr_window_seconds: 30,
            grace_seconds: 1,
            renditions: vec![source(), rung("144p", 144, 150)],
            origin_secret: None,
            max_bitrate_kbps: 8000,
            latency: Latency::Standard,
            part_target: Duration::from_millis(500),
        }
    }

    /// The same room with low latency (LL-HLS on CMAF).
    pub fn low_latency(mut self) -> Self {
        self.latency = Latency::Low;
        self
    }
}

pub struct TestServer {
    pub server: Arc<MediaServer>,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(rooms: Vec<RoomSpec>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let configs = rooms
            .iter()
            .map(|r| {
                let key_file = dir.path().join(format!("{}-key", r.name));
                std::fs::write(&key_file, format!("{}\n", r.key)).expect("key file");
                let origin_secret_file = r.origin_secret.map(|s| {
                    let p = dir.path().join(format!("{}-origin", r.name));
                    std::fs::write(&p, s).expect("origin file");
                    p
                });
                RoomConfig {
                    room: RoomIdentity::new(r.namespace, r.name),
                    path_prefix: RoomIdentity::new(r.namespace, r.name).path_prefix(),
                    stream_key_file: key_file,
                    max_bitrate_kbps: r.max_bitrate_kbps,
                    reconnect_grace: Duration::from_secs(u64::from(r.grace_seconds)),
                    segment_seconds: r.segment_seconds,
                    dvr_window_seconds: r.dvr_window_seconds,
                    renditions: r.renditions.clone(),
                    playlist_max_age_seconds: 1,
                    segment_max_age_seconds: 86400,
                    origin_secret_file,
                    latency: r.latency,
                    part_target: r.part_target,
                }
            })
            .collect();
        let server = MediaServer::new(
            configs,
            MediaOptions {
                speed_preset: "ultrafast".into(),
                limits: Default::default(),
            },
        )
        .expect("server");
        let rtmp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (rtmp_addr, http_addr) = (
            rtmp.local_addr().expect("addr"),
            http.local_addr().expect("addr"),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        let app = roomcast_media::origin::hls::router(server.clone())
            .merge(roomcast_media::origin::ops::router(server.clone()));
        let task = tokio::spawn(async move {
            let _ = roomcast_media::listen::run(s, rtmp, (http, app), None, async {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            server,
            rtmp: rtmp_addr,
            http: http_addr,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_request(self.http, "GET", path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_request(self.http, "GET", path, headers).await
    }

    /// `file` (`0.ts`, `3.1.m4s`, `init-1.mp4`) of the session whose media playlist
    /// `<rendition_path>/index.m3u8` serves now: its name carries that session's token.
    pub async fn get_session_file(
        &self,
        rendition_path: &str,
        file: &str,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        let playlist = self
            .get_with(&format!("{rendition_path}/index.m3u8"), headers)
            .await;
        let token = session_token(&playlist.text());
        self.get_with(&format!("{rendition_path}/{token}-{file}"), headers)
            .await
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Poll `path` until it answers 200 and `pred` holds on the body.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> HttpResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(path).await;
            if r.status == 200 && pred(&r.text()) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {path}: last {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Options of a test publisher.
pub struct Publisher {
    pub seconds: u32,
    pub realtime: bool,
    pub size: &'static str,
    pub fps: u32,
    /// GOP in frames (keyframe every `gop` frames).
    pub gop: u32,
    pub bframes: u32,
    pub audio: &'static str,
    pub video_source: &'static str,
    /// `-b:v` in kbit/s; ffmpeg announces it as `videodatarate` in onMetaData (CRF when unset,
    /// announced as 0).
    pub video_kbps: Option<u32>,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher {
            seconds: 4,
            realtime: true,
            size: "320x240",
            fps: 15,
            gop: 15,
            bframes: 0,
            audio: "aac",
            video_source: "testsrc2",
            video_kbps: None,
        }
    }
}

impl Publisher {
    /// Start ffmpeg publishing lavfi video + audio to `url`.
    pub fn spawn(&self, url: &str) -> Child {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
        if self.realtime {
            cmd.arg("-re");
        }
        cmd.args([
            "-f",
            "lavfi",
            "-i",
            &format!("{}=size={}:rate={}", self.video_source, self.size, self.fps),
        ]);
        if self.audio != "none" {
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
        }
        cmd.args(["-t", &self.seconds.to_string()]);
        cmd.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &self.gop.to_string(),
            "-keyint_min",
            &self.gop.to_string(),
            "-sc_threshold",
            "0",
            "-bf",
            &self.bframes.to_string(),
        ]);
        if let Some(kbps) = self.video_kbps {
            cmd.args(["-b:v", &format!("{kbps}k")]);
        }
        match self.audio {
            "none" => {
                cmd.arg("-an");
            }
            "mp3" => {
                cmd.args(["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "44100"]);
            }
            _ => {
                cmd.args(["-c:a", "aac", "-b:a", "64k"]);
            }
        }
        cmd.args(["-f", "flv", url]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd.kill_on_drop(true);
        cmd.spawn().expect("spawn ffmpeg")
    }
}

/// Wait for a publisher to exit; returns whether it succeeded.
pub async fn wait_exit(mut child: Child, timeout: Duration) -> bool {
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            let _ = child.kill().await;
            panic!("publisher did not exit within {timeout:?}");
        }
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Minimal HTTP/1.1 client (Connection: close; bodies with Content-Length).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// `(uri, duration)` of each segment and whether a discontinuity precedes it.
pub fn playlist_segments(text: &str) -> Vec<(String, f64, bool)> {
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("media playlist");
    parsed
        .segments
        .iter()
        .map(|s| (s.uri.clone(), f64::from(s.duration), s.discontinuity))
        .collect()
}

/// The session token of the file names a media playlist lists (`<token>-<seq>.ts`, parts and
/// inits alike).
pub fn session_token(playlist: &str) -> String {
    playlist
        .lines()
        .filter_map(|l| match l.split_once("URI=\"") {
            Some((_, uri)) => uri.split('"').next(),
            None => (!l.starts_with('#')).then_some(l),
        })
        .filter(|uri| !uri.ends_with(".m3u8"))
        .find_map(|uri| Some(uri.split_once('-')?.0.to_owned()))
        .unwrap_or_else(|| panic!("no session file listed:\n{playlist}"))
}

/// The sequence number in a segment or part name, `<token>-<seq>.ts` or `<token>-<seq>.<part>.m4s`.
pub fn seq_of(name: &str) -> u64 {
    name.split_once('-')
        .and_then(|(_, file)| file.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("not a segment name: {name}"))
}

pub fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write segment");
    p
}

/// ffprobe `-show_streams` as JSON.
pub fn probe_streams(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// `path` holds H.264 of `height` and AAC (ffprobe's reading); `what` names it in failures.
pub fn assert_h264_and_aac(path: &Path, height: i64, what: &str) {
    let streams = probe_streams(path);
    let streams = streams["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    assert_eq!(video["codec_name"], "h264", "{what}");
    assert_eq!(video["height"].as_i64(), Some(height), "{what}");
    assert!(
        streams
            .iter()
            .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"),
        "{what} has no AAC audio"
    );
}

/// Video frames of a segment: (pts_time, key_frame).
pub fn probe_video_frames(path: &Path) -> Vec<(f64, bool)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,key_frame",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| {
                    (
                        f["pts_time"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(f64::NAN),
                        f["key_frame"].as_i64() == Some(1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Counter value from the text exposition, e.g.
/// `roomcast_media_publishes_refused_total{room="",reason="wrong_key"}`.
pub fn metric(text: &str, name_and_labels_prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name_and_labels_prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum()
}

/// One RTMP `connect` command to app `live` as a single type-0 chunk on chunk stream 3.
fn connect_command(transaction: f64) -> Vec<u8> {
    let mut payload = vec![0x02, 0x00, 0x07];
    payload.extend_from_slice(b"connect");
    payload.push(0x00);
    payload.extend_from_slice(&transaction.to_be_bytes());
    payload.extend_from_slice(&[0x03, 0x00, 0x03]);
    payload.extend_from_slice(b"app");
    payload.extend_from_slice(&[0x02, 0x00, 0x04]);
    payload.extend_from_slice(b"live");
    payload.extend_from_slice(&[0x00, 0x00, 0x09]);
    let len = payload.len() as u32;
    let mut chunk = vec![0x03, 0, 0, 0];
    chunk.extend_from_slice(&len.to_be_bytes()[1..]);
    chunk.extend_from_slice(&[0x14, 0, 0, 0, 0]);
    chunk.extend(payload);
    chunk
}

/// A hostile RTMP client at `addr`: the smallest receive window it can ask for, a handshake,
/// then 40 000 `connect` commands (each answered with a `_result` about five times its size)
/// whose answers it never reads. The returned task keeps writing until aborted; the read half
/// keeps the socket open.
pub async fn flood_unread_answers(
    addr: SocketAddr,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::task::JoinHandle<tokio::net::tcp::OwnedWriteHalf>,
) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut s = socket.connect(addr).await.expect("connect");
    let mut hello = vec![3u8];
    hello.extend(std::iter::repeat_n(0u8, 1536 * 2));
    s.write_all(&hello).await.expect("handshake");
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut s0s1s2).await.expect("server handshake");
    let flood: Vec<u8> = (0..40_000)
        .flat_map(|i| connect_command(f64::from(i)))
        .collect();
    let (read, mut write) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&flood).await;
        write
    });
    (read, writer)
}
