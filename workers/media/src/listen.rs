//! The listeners: one RTMP acceptor handing publishers to the ingest thread, one HTTP acceptor
//! handing connections to per-core workers, each serving the finished router the caller
//! composed. [`run`] serves until a stop signal, then shuts the worker down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::limits::{self, Admitted, Limit};
use crate::server::MediaServer;

/// Upper bound of HTTP worker threads.
const MAX_HTTP_THREADS: usize = 8;
/// First pause after a failed `accept()`; doubled on each failure in a row up to
/// [`ACCEPT_BACKOFF_MAX`]. EMFILE and friends clear when connections close, so the listener
/// waits and retries instead of ending.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A source of accepted connections: a [`TcpListener`], or in tests one that fails on purpose.
pub trait Accept: Send + 'static {
    fn accept(
        &mut self,
    ) -> impl std::future::Future<Output = std::io::Result<(tokio::net::TcpStream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    async fn accept(&mut self) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
        TcpListener::accept(self).await
    }
}

/// The next accepted connection. A failed `accept()` is logged (once per run of failures) and
/// retried after a pause that doubles up to [`ACCEPT_BACKOFF_MAX`]; it never ends the listener.
async fn accept_retrying(
    listener: &mut impl Accept,
    name: &'static str,
) -> (tokio::net::TcpStream, SocketAddr) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!(listener = name, error = %e, "accept failed; retrying with backoff");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// An accepted connection, handed from the acceptor to a worker thread with its place under the
/// connection caps.
type Handoff = (std::net::TcpStream, SocketAddr, Admitted);

/// A thread running a single-threaded tokio runtime that serves the connections sent to it
/// with `serve`. Connections never move between threads afterwards (the nginx worker model):
/// a read wakes exactly one thread, with no work-stealing notifications to the others.
fn connection_thread<F, Fut>(
    name: String,
    serve: F,
) -> Result<(
    tokio::sync::mpsc::UnboundedSender<Handoff>,
    std::thread::JoinHandle<()>,
)>
where
    F: FnOnce(tokio::sync::mpsc::UnboundedReceiver<Handoff>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let _e = span.enter();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(serve(rx)),
                Err(e) => tracing::error!(error = %e, "cannot start a connection worker"),
            }
        })
        .map_err(Error::Net)?;
    Ok((tx, thread))
}

/// Serve the publishers handed to this thread; each one is a task on this runtime.
async fn rtmp_worker(
    server: Arc<MediaServer>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
) {
    let mut connections = tokio::task::JoinSet::new();
    while let Some((std_stream, peer, slot)) = rx.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
            continue;
        };
        let stop = server.stopping();
        connections.spawn(crate::ingest::connection::handle_connection(
            server.clone(),
            stream,
            peer,
            stop,
            slot,
        ));
        while connections.try_join_next().is_some() {}
    }
    // The acceptor stopped (shutdown): let the publishers finish their last segments.
    while connections.join_next().await.is_some() {}
}

/// Serve the connections handed to this worker until the acceptor stops.
async fn http_worker(
    server: Arc<MediaServer>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    router: axum::Router,
) {
    let stop = server.stopping();
    let header_timeout = Duration::from_secs(server.limits.http_header_timeout_seconds);
    use tower::ServiceExt;
    let mut connections = tokio::task::JoinSet::new();
    while let Some((std_stream, peer, slot)) = rx.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
            continue;
        };
        let router = router.clone();
        let mut stop = stop.clone();
        let server = server.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    router.clone().oneshot(req)
                });
            // hyper enforces the header read timeout only with a timer.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r && e.is_timeout() {
                        limits::refused(&server.metrics, &server.offenders, "http", peer, Limit::HeaderTimeout);
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Accept publishers until shutdown. Every publisher is served on one ingest thread: a
/// publisher costs a few microseconds per message (the source is muxed inline, encoding
/// runs in GStreamer's threads), so one thread carries many rooms, and a message wakes
/// that thread alone.
pub async fn serve_rtmp(server: Arc<MediaServer>, mut listener: impl Accept) -> Result<()> {
    let _alive = server.listener_alive("rtmp");
    let mut shutdown = server.stopping();
    let worker = server.clone();
    let (handoff, thread) =
        connection_thread("rtmp-ingest".into(), move |rx| rtmp_worker(worker, rx))?;
    loop {
        let (stream, peer) = tokio::select! {
            a = accept_retrying(&mut listener, "rtmp") => a,
            _ = shutdown.changed() => break,
        };
        // Over a cap: closed at once (dropping the stream), counted, logged once per address.
        let slot = match server.rtmp_gate.admit(peer.ip(), std::time::Instant::now()) {
            Ok(slot) => slot,
            Err(limit) => {
                limits::refused(&server.metrics, &server.offenders, "rtmp", peer, limit);
                continue;
            }
        };
        if let Ok(std_stream) = stream.into_std() {
            let _ = handoff.send((std_stream, peer, slot));
        }
    }
    drop(handoff);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    Ok(())
}

/// Serve `router` (HLS and whatever the caller composed with it) until shutdown.
///
/// One acceptor hands connections round-robin to one single-threaded runtime per core, each
/// serving its connections with hyper start to end (the nginx worker model): no task moves
/// between threads, which roughly halves the context switches of small playlist requests
/// compared with the work-stealing runtime.
pub async fn serve_http(
    server: Arc<MediaServer>,
    mut listener: impl Accept,
    router: Router,
) -> Result<()> {
    let _alive = server.listener_alive("http");
    let mut shutdown = server.stopping();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, MAX_HTTP_THREADS);
    let mut senders = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let router = router.clone();
        let worker = server.clone();
        let (tx, thread) = connection_thread(format!("http-{i}"), move |rx| {
            http_worker(worker, rx, router)
        })?;
        senders.push(tx);
        threads.push(thread);
    }
    let mut next = 0usize;
    loop {
        let (stream, peer) = tokio::select! {
            a = accept_retrying(&mut listener, "http") => a,
            _ = shutdown.changed() => break,
        };
        let slot = match server.http_gate.admit(peer.ip(), std::time::Instant::now()) {
            Ok(slot) => slot,
            Err(limit) => {
                limits::refused(&server.metrics, &server.offenders, "http", peer, limit);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Ok(std_stream) = stream.into_std() {
            let _ = senders[next % workers].send((std_stream, peer, slot));
            next = next.wrapping_add(1);
        }
    }
    drop(senders);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    Ok(())
}

/// Serve `router` on a port of its own with axum's server until shutdown (the metrics
/// port: light traffic, no need for per-thread workers).
pub async fn serve_plain(
    server: Arc<MediaServer>,
    listener: TcpListener,
    router: Router,
) -> Result<()> {
    let _alive = server.listener_alive("metrics");
    let mut shutdown = server.stopping();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await
        .map_err(Error::Net)
}

/// Run everything until `stop` resolves, then shut down gracefully. `http` and `ops` pair
/// each HTTP listener with the finished router it serves: the caller composes them (HLS,
/// ops, the recordings API).
pub async fn run(
    server: Arc<MediaServer>,
    rtmp: TcpListener,
    http: (TcpListener, Router),
    ops: Option<(TcpListener, Router)>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let span = tracing::info_span!("media");
    let rtmp_task = tokio::spawn(serve_rtmp(server.clone(), rtmp).instrument(span.clone()));
    let (http, app) = http;
    let http_task = tokio::spawn(serve_http(server.clone(), http, app).instrument(span.clone()));
    let metrics_task = ops.map(|(l, r)| tokio::spawn(serve_plain(server.clone(), l, r)));
    stop.await;
    tracing::info!("shutting down: closing the last segments");
    server
        .shutdown(crate::transcode::pipeline::FINISH_TIMEOUT)
        .await;
    let _ = rtmp_task.await;
    let _ = http_task.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    Ok(())
}
