//! The listeners under failure: `accept()` errors are retried, a listener that ends makes the
//! worker not ready.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roomcast_media::limits::{HttpLimits, ListenerLimits, RtmpLimits};
use roomcast_media::listen::{Accept, Workers, serve_http, serve_rtmp};
use roomcast_media::{MediaOptions, MediaServer, RoomConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// A worker with one room (`shows/lobby`); its key file is read only on publish, which these
/// tests never reach.
fn server() -> Arc<MediaServer> {
    server_with(ListenerLimits::default())
}

fn server_with(limits: ListenerLimits) -> Arc<MediaServer> {
    let key = std::path::PathBuf::from("/nonexistent/stream-key");
    MediaServer::new(
        vec![RoomConfig::for_test("lobby", key)],
        MediaOptions {
            speed_preset: "ultrafast".into(),
            limits,
        },
    )
    .expect("server")
}

/// A listener of `kind` (`rtmp`, or `http` serving the ops routes) on a free port.
async fn listening(
    limits: ListenerLimits,
    kind: &str,
) -> (
    Arc<MediaServer>,
    SocketAddr,
    tokio::task::JoinHandle<roomcast_media::Result<()>>,
) {
    let server = server_with(limits);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = match kind {
        "rtmp" => tokio::spawn(serve_rtmp(server.clone(), listener)),
        _ => {
            let router = roomcast_media::origin::ops::router(server.clone());
            tokio::spawn(serve_http(
                server.clone(),
                listener,
                router,
                Workers::PerCore(2),
            ))
        }
    };
    (server, addr, task)
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

/// `roomcast_media_refused_connections_total` for one listener and reason (0 when absent).
fn refused(server: &MediaServer, listener: &str, reason: &str) -> u64 {
    let needle = format!(
        "roomcast_media_refused_connections_total{{listener=\"{listener}\",reason=\"{reason}\"}} "
    );
    server
        .metrics
        .encode()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&needle)
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// [`refused`], once it reached `at_least` or after 2 s: the count lands just after the close.
async fn refused_eventually(
    server: &MediaServer,
    listener: &str,
    reason: &str,
    at_least: u64,
) -> u64 {
    for _ in 0..40 {
        let n = refused(server, listener, reason);
        if n >= at_least {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused(server, listener, reason)
}

/// Whether the server closed `client` within `within` (EOF or reset), reading whatever came first.
async fn closed_within(client: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_slowloris_client_is_cut_at_the_header_timeout() {
    let (server, addr, task) = listening(
        ListenerLimits {
            http: HttpLimits {
                http_header_timeout_seconds: 1,
                ..HttpLimits::default()
            },
            ..ListenerLimits::default()
        },
        "http",
    )
    .await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    // One byte of the request head every 200 ms: each byte arrives well within any read
    // timeout, the whole head never does.
    let head =
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let started = std::time::Instant::now();
    let mut cut = false;
    for b in head {
        if client.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut client, Duration::from_millis(200)).await {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the server still waits for the head after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        refused_eventually(&server, "http", "header_timeout", 1).await,
        1
    );
    server.shutdown(Duration::from_secs(1)).await;
    let _ = task.await;
}

/// Two connections from one address are held; a third is closed at once and counted; closing
/// one frees its slot.
async fn the_per_ip_cap_holds(kind: &str) {
    let limits = ListenerLimits {
        rtmp: RtmpLimits {
            rtmp_max_connections_per_ip: 2,
            ..RtmpLimits::default()
        },
        http: HttpLimits {
            http_max_connections_per_ip: 2,
            ..HttpLimits::default()
        },
        ..ListenerLimits::default()
    };
    let (server, addr, task) = listening(limits, kind).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let mut third = TcpStream::connect(addr).await.expect("connect");
    assert!(closed_within(&mut third, Duration::from_secs(5)).await);
    assert_eq!(
        refused_eventually(&server, kind, "connections_per_ip", 1).await,
        1
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut next = TcpStream::connect(addr).await.expect("connect");
    assert!(!closed_within(&mut next, Duration::from_millis(500)).await);
    assert_eq!(refused(&server, kind, "connections_per_ip"), 1);
    // The held one is still served.
    if kind == "http" {
        held[0]
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let mut buf = [0u8; 12];
        held[0].read_exact(&mut buf).await.expect("response");
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    server.shutdown(Duration::from_secs(1)).await;
    let _ = task.await;
}

#[tokio::test]
async fn http_connections_over_the_per_ip_cap_are_closed_and_counted() {
    the_per_ip_cap_holds("http").await;
}

#[tokio::test]
async fn rtmp_connections_over_the_per_ip_cap_are_closed_and_counted() {
    the_per_ip_cap_holds("rtmp").await;
}

#[tokio::test]
async fn a_socket_that_sends_nothing_is_cut_at_the_handshake_deadline() {
    let (server, addr, task) = listening(
        ListenerLimits {
            rtmp: RtmpLimits {
                rtmp_handshake_timeout_seconds: 1,
                ..RtmpLimits::default()
            },
            ..ListenerLimits::default()
        },
        "rtmp",
    )
    .await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    assert!(closed_within(&mut client, Duration::from_secs(5)).await);
    assert_eq!(
        refused_eventually(&server, "rtmp", "handshake_timeout", 1).await,
        1
    );
    server.shutdown(Duration::from_secs(1)).await;
    let _ = task.await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_still_cut_at_its_publish_deadline() {
    let (server, addr, task) = listening(
        ListenerLimits {
            rtmp: RtmpLimits {
                rtmp_publish_timeout_seconds: 2,
                ..RtmpLimits::default()
            },
            ..ListenerLimits::default()
        },
        "rtmp",
    )
    .await;
    let (_read, writer) = common::flood_unread_answers(addr).await;
    // The publish deadline (2 s) passes while the worker's answers sit unread: the connection
    // must still be cut and its slot freed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        refused_eventually(&server, "rtmp", "publish_timeout", 1).await,
        1
    );
    writer.abort();
    server.shutdown(Duration::from_secs(1)).await;
    let _ = task.await;
}
