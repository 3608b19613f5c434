//! The listeners under failure: `accept()` errors are retried, a listener that ends makes the
//! worker not ready.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roomcast_crds::RoomIdentity;
use roomcast_media::listen::{Accept, serve_rtmp};
use roomcast_media::{MediaOptions, MediaServer, RoomConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// A worker with one room (`shows/lobby`); its key file is read only on publish, which these
/// tests never reach.
fn server() -> Arc<MediaServer> {
    let key = std::path::PathBuf::from("/nonexistent/stream-key");
    let room = RoomIdentity::new("shows", "lobby");
    let config = RoomConfig {
        path_prefix: room.path_prefix(),
        room,
        stream_key_file: key,
        max_bitrate_kbps: 8000,
        reconnect_grace: Duration::from_secs(10),
        segment_seconds: 2,
        dvr_window_seconds: 120,
        renditions: roomcast_crds::defaults::renditions(),
        playlist_max_age_seconds: 1,
        segment_max_age_seconds: 86400,
        origin_secret_file: None,
    };
    MediaServer::new(
        vec![config],
        MediaOptions {
            speed_preset: "ultrafast".into(),
            limits: Default::default(),
        },
    )
    .expect("server")
}

/// A listener whose first `failures` accepts fail with EMFILE, as when the process is out of
/// file descriptors.
struct OutOfFiles {
    inner: TcpListener,
    failures: usize,
}

impl Accept for OutOfFiles {
    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(std::io::Error::from_raw_os_error(24)); // EMFILE
        }
        self.inner.accept().await
    }
}

/// A listener whose task dies.
struct Broken;

impl Accept for Broken {
    async fn accept(&mut self) -> std::io::Result<(TcpStream, SocketAddr)> {
        panic!("listener broke");
    }
}

async fn readyz(server: &Arc<MediaServer>) -> http::StatusCode {
    let req = http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .expect("request");
    roomcast_media::origin::ops::router(server.clone())
        .oneshot(req)
        .await
        .expect("response")
        .status()
}

#[tokio::test]
async fn the_rtmp_listener_survives_accept_errors() {
    let server = server();
    let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = inner.local_addr().expect("addr");
    let task = tokio::spawn(serve_rtmp(
        server.clone(),
        OutOfFiles { inner, failures: 5 },
    ));
    // A publisher's C0+C1 is answered (S0 is 3): the listener got past the errors.
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 1536]);
    client.write_all(&c0c1).await.expect("c0c1");
    let mut s0 = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut s0))
        .await
        .expect("the listener answers after accept errors")
        .expect("read");
    assert_eq!(s0[0], 3);
    assert!(!task.is_finished());
    assert_eq!(readyz(&server).await, http::StatusCode::OK);
    server.shutdown(Duration::from_secs(1)).await;
    let _ = task.await;
}

#[tokio::test]
async fn readiness_fails_when_a_listener_task_ends() {
    let server = server();
    assert_eq!(readyz(&server).await, http::StatusCode::OK);
    let task = tokio::spawn(serve_rtmp(server.clone(), Broken));
    assert!(task.await.is_err(), "the listener task panicked");
    assert_eq!(readyz(&server).await, http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.listeners_gone(), ["rtmp"]);
}

#[tokio::test]
async fn a_listener_stopped_by_shutdown_leaves_nothing_gone() {
    let server = server();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let task = tokio::spawn(serve_rtmp(server.clone(), listener));
    tokio::task::yield_now().await;
    server.shutdown(Duration::from_secs(1)).await;
    task.await.expect("join").expect("serve");
    assert!(server.listeners_gone().is_empty());
}
