//! What the recorder's tests and the media worker's share:
//!
//! - [`S3TestServer`]: a real S3 protocol server (`s3s` + `s3s-fs`) in-process on a free
//!   loopback port over a temporary directory, SigV4 checked; stoppable and restartable on the
//!   same port for outage tests.
//! - [`LogCapture`]: a `tracing` writer into memory, for tests proving secrets never reach the
//!   logs.
//! - [`ffprobe_duration`]: how long a player finds a recording (a playlist file or URL).
//! - [`ffprobe_variants`]: every variant of a master playlist, decoded to its last frame.
//! - [`StaticServer`]: a plain static file server over a directory, as a bucket behind a CDN
//!   looks to a player.

use std::{
    net::SocketAddr,
    process::Command,
    sync::{Arc, Mutex},
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ConnBuilder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    Secret,
    config::{S3Settings, StaticCredentials},
    store::s3::S3Store,
};

pub const BUCKET: &str = "vods";
pub const ACCESS_KEY: &str = "roomcast-test";
pub const SECRET_KEY: &str = "roomcast-test-secret-key";

pub struct S3TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    task: Option<JoinHandle<()>>,
}

impl S3TestServer {
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serve on `addr` (port 0: a free one), e.g. on the address pods reach in the
    /// cluster-in-a-box suite (`examples/s3-test-server.rs`).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket dir");
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut server = Self {
            addr,
            dir,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let fs = s3s_fs::FileSystem::new(self.dir.path()).expect("s3s-fs");
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        self.task = Some(tokio::spawn(async move {
            // Connections live in this set: stopping the server drops them all.
            let mut conns = tokio::task::JoinSet::new();
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        conns.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }

    /// Stop answering: the port is closed and open connections are dropped.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Serve again on the same port, over the same directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.serve(listener);
    }

    /// Every object key in the test bucket, sorted (read from the server's directory).
    pub fn objects(&self) -> Vec<String> {
        let root = self.dir.path().join(BUCKET);
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(key) = path.strip_prefix(&root) {
                    out.push(key.display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Content of one object of the test bucket.
    pub fn read(&self, key: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.dir.path().join(BUCKET).join(key))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            endpoint: self.endpoint(),
            force_path_style: true,
            credentials: Some(StaticCredentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: Secret::new(SECRET_KEY),
                session_token: None,
            }),
            connect_timeout: std::time::Duration::from_secs(1),
            attempt_timeout: std::time::Duration::from_secs(5),
        }
    }

    pub async fn store(&self) -> S3Store {
        S3Store::connect(&self.settings()).await.expect("S3 client")
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A `tracing` writer into a shared buffer: give the subscriber
/// `.with_writer(move || capture.clone())`, then read [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The duration ffprobe reads from `input` (a file path or an `http://` URL of a playlist),
/// following the playlist to its segments. An error says what ffprobe said.
pub fn ffprobe_duration(input: &str) -> Result<f64, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .args(["-protocol_whitelist", "file,http,tcp"])
        .arg(input)
        .output()
        .map_err(|e| format!("running ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffprobe {input}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|e| format!("ffprobe {input} printed {text:?}: {e}"))
}

/// One variant of a master playlist as ffprobe decoded it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedVariant {
    /// Height of its video stream, when it has one.
    pub height: Option<u64>,
    pub video_frames: u64,
    pub audio_frames: u64,
}

/// Decode every variant of the master playlist `master` (a file path or an `http://` URL), in
/// the master's order. ffprobe itself exits 0 when a media playlist or a segment cannot be
/// fetched (it skips it and warns), so any warning is an error here: a missing file or a URI
/// the server cannot resolve fails the caller instead of shortening the count.
pub fn ffprobe_variants(master: &str) -> Result<Vec<DecodedVariant>, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "warning", "-count_frames"])
        .args([
            "-show_entries",
            "program=program_id:stream=codec_type,height,nb_read_frames",
        ])
        .args(["-of", "json", "-protocol_whitelist", "file,http,tcp"])
        .arg(master)
        .output()
        .map_err(|e| format!("running ffprobe: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!("ffprobe {master}: {stderr}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("ffprobe {master} printed no JSON: {e}"))?;
    let frames = |s: &serde_json::Value| {
        s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let programs = json["programs"].as_array().cloned().unwrap_or_default();
    Ok(programs
        .iter()
        .map(|p| {
            let streams = p["streams"].as_array().cloned().unwrap_or_default();
            let of = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind).cloned();
            let video = of("video");
            DecodedVariant {
                height: video.as_ref().and_then(|v| v["height"].as_u64()),
                video_frames: video.as_ref().map_or(0, frames),
                audio_frames: of("audio").as_ref().map_or(0, frames),
            }
        })
        .collect())
}

/// A static file server (Python's `http.server`) over `root` on a free loopback port: what a
/// bucket behind a CDN looks like to a player, with no roomcast process in the path.
pub struct StaticServer {
    child: std::process::Child,
    pub port: u16,
}

impl StaticServer {
    /// `None` when python3 is missing or does not say its port.
    pub fn start(root: &std::path::Path) -> Option<StaticServer> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(root)
            .arg("0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        let stdout = child.stdout.take()?;
        std::io::BufReader::new(stdout).read_line(&mut line).ok()?;
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok());
        match port {
            Some(port) => Some(StaticServer { child, port }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
