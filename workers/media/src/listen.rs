//! The listeners: one RTMP acceptor handing publishers to the ingest thread, one HTTP acceptor
//! handing connections to per-core workers, each serving the finished router the caller
//! composed. [`run`] serves until a stop signal, then shuts the worker down gracefully.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::error::{Error, Result};
use roomcast_runtime::listen::{self, Handoff, HttpServer, accept_retrying, connection_thread};
pub use roomcast_runtime::listen::{Accept, Workers};

use crate::limits::{self, Limit};
use crate::server::MediaServer;

/// Upper bound of HTTP worker threads.
const MAX_HTTP_THREADS: usize = 8;

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

/// Accept publishers until shutdown. Every publisher is served on one ingest thread: a
/// publisher costs a few microseconds per message (the source is muxed inline, encoding
/// runs in GStreamer's threads), so one thread carries many rooms, and a message wakes
/// that thread alone.
pub async fn serve_rtmp(server: Arc<MediaServer>, mut listener: impl Accept) -> Result<()> {
    let _alive = server.listener_alive("rtmp");
    let mut shutdown = server.stopping();
    let worker = server.clone();
    let (handoff, thread) =
        connection_thread("rtmp-ingest".into(), move |rx| rtmp_worker(worker, rx))
            .map_err(Error::Net)?;
    loop {
        let (stream, peer) = tokio::select! {
            a = accept_retrying(&mut listener, "rtmp") => a,
            _ = shutdown.changed() => break,
        };
        // Over a cap: closed at once (dropping the stream), counted, logged once per address.
        let slot = match server.rtmp_gate.admit(peer.ip(), std::time::Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => {
                limits::refused(
                    &server.metrics,
                    &server.offenders,
                    "rtmp",
                    peer,
                    Limit::Listener(refusal),
                );
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

/// Serve `router` (HLS and whatever the caller composed with it: chat and the watch page in
/// `roomcast dev`) until shutdown, under the HTTP limits, counting refusals as the worker's own.
///
/// One acceptor hands connections round-robin to one single-threaded runtime per core, each
/// serving its connections with hyper start to end (the nginx worker model): no task moves
/// between threads, which roughly halves the context switches of small playlist requests
/// compared with the work-stealing runtime. `workers` may ask for the caller's runtime instead
/// (chat needs socketioxide's tasks there).
pub async fn serve_http(
    server: Arc<MediaServer>,
    listener: impl Accept,
    router: Router,
    workers: Workers,
) -> Result<()> {
    let _alive = server.listener_alive("http");
    let counter = server.clone();
    let http = HttpServer {
        name: "http",
        gate: server.http_gate.clone(),
        limits: server.limits.http.clone(),
        on_refused: Arc::new(move |peer, refusal| {
            limits::refused(
                &counter.metrics,
                &counter.offenders,
                "http",
                peer,
                Limit::Listener(refusal),
            )
        }),
        workers,
    };
    listen::serve_http(listener, router, http, server.stopping())
        .await
        .map_err(Error::Net)
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
    let http_task = tokio::spawn(
        serve_http(
            server.clone(),
            http,
            app,
            Workers::PerCore(MAX_HTTP_THREADS),
        )
        .instrument(span.clone()),
    );
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
