//! One publisher connection, start to end: the PROXY header (when required), the connection
//! caps, TLS (on the RTMPS listener), the shared RTMP core until `publish`, the route lookup,
//! then the relay to the room's media worker. A span per connection names the listener, the
//! client address and, once known, the room; the key never appears in it.
//!
//! Memory stays bounded: one read buffer per side, and the bytes one read produces are written
//! to the backend before the publisher is read again, so a slow backend slows the publisher
//! (TCP backpressure) and one that stalls for `backend_write_timeout` (10 s) ends the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use roomcast_rtmp::core::{IngestEvent, Output, RtmpCore};
use roomcast_rtmp::io::write_by_deadline;
use roomcast_rtmp::key::{MAX_STREAM_NAME_BYTES, PresentedKey};
use roomcast_rtmp::limits::{Admitted, Limit, Refusal};
use roomcast_runtime::clientip::limit_key;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::backend::{BACKEND_SETUP_TIMEOUT, Backend};
use crate::error::{Error, Result};
use crate::metrics::{ListenerLabels, room};
use crate::server::{Gateway, ListenerKind};

/// Read buffer per side.
const READ_BUFFER: usize = 64 * 1024;
/// How often the bitrate gauge is brought up to date.
const BITRATE_WINDOW: Duration = Duration::from_secs(1);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Serve one accepted TCP connection until it ends.
pub async fn handle(gw: Arc<Gateway>, mut stream: TcpStream, peer: SocketAddr, kind: ListenerKind) {
    let listener = kind.name();
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let span =
        tracing::info_span!("ingest", conn, listener, client = %peer, room = tracing::field::Empty);
    async move {
        let Some(client) = identify(&gw, &mut stream, peer, listener).await else {
            return;
        };
        if client != peer {
            tracing::Span::current().record("client", tracing::field::display(client));
        }
        let slot = match gw.gate.admit(client.ip(), Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => return gw.refused(listener, client, refusal.label(), &refusal),
        };
        let result = match kind {
            ListenerKind::Rtmp => serve(&gw, stream, client, &slot).await,
            ListenerKind::Rtmps(tls) => {
                match tokio::time::timeout(gw.session.handshake, tls.acceptor().accept(stream))
                    .await
                {
                    Ok(Ok(tls_stream)) => serve(&gw, tls_stream, client, &slot).await,
                    Ok(Err(e)) => Err(tls_failed(&gw, listener, e.to_string())),
                    Err(_) => Err(tls_failed(&gw, listener, "no TLS handshake in time".into())),
                }
            }
        };
        match result {
            Ok(()) => tracing::info!("connection closed"),
            Err(Error::Rtmp(roomcast_rtmp::Error::Limit(limit))) => {
                gw.refused(listener, client, limit.label(), &limit)
            }
            Err(Error::Refused { reason, message }) => {
                gw.refused(listener, client, reason, &message)
            }
            Err(Error::Backend {
                reason,
                message,
                backend,
            }) => {
                gw.metrics.relay_error(reason);
                tracing::warn!(%backend, reason, "relay ended: {message}");
            }
            Err(e) => tracing::info!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

/// The client's address: the peer's, or with `--proxy-protocol` the one its header names. A
/// missing or garbled header (or none in time) refuses the connection.
async fn identify(
    gw: &Gateway,
    stream: &mut TcpStream,
    peer: SocketAddr,
    listener: &'static str,
) -> Option<SocketAddr> {
    if !gw.options.proxy_protocol {
        return Some(peer);
    }
    // Until the header names the client, the per-address cap cannot apply; this bounds how
    // many such connections wait at once.
    let waiting = match gw.unidentified.admit(peer.ip(), Instant::now()) {
        Ok(waiting) => waiting,
        Err(refusal) => {
            gw.refused(listener, peer, refusal.label(), &refusal);
            return None;
        }
    };
    let header = tokio::time::timeout(
        gw.session.handshake,
        crate::proxy::read_header(stream, peer),
    );
    let read = tokio::select! {
        read = header => read,
        _ = waiting.evicted() => {
            gw.refused(listener, peer, Refusal::Evicted.label(), &Refusal::Evicted);
            return None;
        }
    };
    match read {
        Ok(Ok(client)) => Some(client),
        Ok(Err(e)) => {
            gw.refused(listener, peer, "proxy_header", &e);
            None
        }
        Err(_) => {
            gw.refused(listener, peer, "proxy_header", &"no PROXY header in time");
            None
        }
    }
}

fn tls_failed(gw: &Gateway, listener: &'static str, why: String) -> Error {
    gw.metrics
        .tls_handshake_failures
        .get_or_create(&ListenerLabels { listener })
        .inc();
    Error::Refused {
        reason: "tls_handshake",
        message: format!("TLS handshake failed: {why}"),
    }
}

/// A publish being relayed.
struct Relay {
    backend: Backend,
    bytes: Counter,
    kbps: Gauge,
    window_start: Instant,
    window_bytes: u64,
    active: Gauge,
    write_timeout: Duration,
}

impl Relay {
    fn new(gw: &Gateway, backend: Backend, room_name: &str) -> Self {
        let labels = room(room_name);
        gw.metrics.active_relays.inc();
        Relay {
            backend,
            bytes: gw.metrics.relayed_bytes.get_or_create(&labels).clone(),
            kbps: gw.metrics.relay_kbps.get_or_create(&labels).clone(),
            window_start: Instant::now(),
            window_bytes: 0,
            active: gw.metrics.active_relays.clone(),
            write_timeout: gw.options.backend_write_timeout,
        }
    }

    /// Write to the backend, counting, within the backend write timeout.
    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let addr = self.backend.addr().to_owned();
        match tokio::time::timeout(self.write_timeout, self.backend.stream.write_all(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::backend(&addr, "backend_closed", e.to_string())),
            Err(_) => {
                return Err(Error::backend(
                    &addr,
                    "backend_slow",
                    format!("accepted no bytes for {:?}", self.write_timeout),
                ));
            }
        }
        self.bytes.inc_by(bytes.len() as u64);
        self.window_bytes += bytes.len() as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= BITRATE_WINDOW {
            let kbps = self.window_bytes * 8 / elapsed.as_millis().max(1) as u64;
            self.kbps.set(kbps as i64);
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.active.dec();
        self.kbps.set(0);
    }
}

/// What woke the connection loop.
enum Wake {
    Publisher(std::io::Result<usize>),
    Backend(std::io::Result<usize>),
    Deadline,
    Stop,
    Evicted,
}

async fn read_backend(relay: Option<&mut Relay>, buf: &mut [u8]) -> std::io::Result<usize> {
    match relay {
        Some(r) => r.backend.stream.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The RTMP session of one publisher: the core until `publish`, then the relay.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    gw: &Gateway,
    mut publisher: S,
    client: SocketAddr,
    slot: &Admitted,
) -> Result<()> {
    let mut core = RtmpCore::new(gw.session, Instant::now());
    let mut buf = vec![0u8; READ_BUFFER];
    let mut backend_buf = vec![0u8; READ_BUFFER];
    let mut relay: Option<Relay> = None;
    // One timer for the connection, moved only when it fires (see the media worker's loop).
    let deadline = tokio::time::sleep_until(core.deadline().0.into());
    tokio::pin!(deadline);
    let mut stop = gw.stopping();
    let evicted = slot.evicted();
    tokio::pin!(evicted);
    loop {
        let wake = tokio::select! {
            r = publisher.read(&mut buf) => Wake::Publisher(r),
            r = read_backend(relay.as_mut(), &mut backend_buf) => Wake::Backend(r),
            _ = deadline.as_mut() => Wake::Deadline,
            _ = stop.changed() => Wake::Stop,
            _ = evicted.as_mut() => Wake::Evicted,
        };
        let n = match wake {
            Wake::Publisher(r) => r?,
            Wake::Backend(r) => {
                let Some(relay) = relay.as_mut() else {
                    continue;
                };
                let addr = relay.backend.addr().to_owned();
                let n = r.map_err(|e| Error::backend(&addr, "backend_closed", e.to_string()))?;
                if n == 0 {
                    return Err(Error::backend(
                        &addr,
                        "backend_closed",
                        "the media worker closed the relay",
                    ));
                }
                let answer = relay.backend.input(&backend_buf[..n])?;
                relay.send(&answer).await?;
                continue;
            }
            Wake::Deadline => {
                if let Some(limit) = core.expired(Instant::now()) {
                    return Err(limit_error(limit));
                }
                deadline.as_mut().reset(core.deadline().0.into());
                continue;
            }
            Wake::Stop => return Ok(()),
            Wake::Evicted => return Err(limit_error(Limit::Listener(Refusal::Evicted))),
        };
        if n == 0 {
            return Ok(());
        }
        let mut pending: std::collections::VecDeque<Output> =
            core.handle_input(&buf[..n], Instant::now())?.into();
        let mut to_backend = Vec::new();
        while let Some(out) = pending.pop_front() {
            match out {
                Output::Send(bytes) => write_by_deadline(&mut publisher, &core, &bytes).await?,
                Output::Event(IngestEvent::PublishRequested {
                    request_id, key, ..
                }) => {
                    if relay.is_some() {
                        return Err(roomcast_rtmp::Error::Rtmp(
                            "second publish on one connection".into(),
                        )
                        .into());
                    }
                    match open_relay(gw, client, &key).await {
                        Ok(r) => {
                            slot.settle();
                            tracing::info!(backend = %r.backend.addr(), "publish accepted; relaying");
                            relay = Some(r);
                            pending.extend(core.accept_publish(request_id, Instant::now())?);
                        }
                        Err(e) => {
                            let message = match &e {
                                Error::Refused { message, .. } => message.clone(),
                                other => other.to_string(),
                            };
                            for o in core.reject_publish(request_id, &message)? {
                                if let Output::Send(b) = o {
                                    write_by_deadline(&mut publisher, &core, &b).await?;
                                }
                            }
                            let _ = publisher.shutdown().await;
                            return Err(e);
                        }
                    }
                }
                Output::Event(event) => {
                    let Some(r) = relay.as_mut() else { continue };
                    let bytes = match event {
                        IngestEvent::Metadata(md) => r.backend.metadata(&md)?,
                        IngestEvent::Video { timestamp_ms, data } => {
                            r.backend.video(timestamp_ms, data)?
                        }
                        IngestEvent::Audio { timestamp_ms, data } => {
                            r.backend.audio(timestamp_ms, data)?
                        }
                        IngestEvent::PublishFinished => {
                            to_backend.extend(r.backend.finish()?);
                            r.send(&to_backend).await?;
                            tracing::info!("publisher finished");
                            return Ok(());
                        }
                        IngestEvent::PublishRequested { .. } => continue,
                    };
                    to_backend.extend(bytes);
                }
            }
        }
        if let Some(r) = relay.as_mut() {
            r.send(&to_backend).await?;
        }
    }
}

fn limit_error(limit: Limit) -> Error {
    Error::Rtmp(roomcast_rtmp::Error::Limit(limit))
}

/// Decide where a publish goes and open the relay: the key-attempt limit first (before any
/// lookup, so a guesser learns nothing faster than the limit), then the name's length, the
/// route, and the room's own answer.
async fn open_relay(gw: &Gateway, client: SocketAddr, key: &PresentedKey) -> Result<Relay> {
    let refuse = |reason: &'static str, message: &str| Error::Refused {
        reason,
        message: message.to_owned(),
    };
    if gw.key_attempts.check_key(&limit_key(client.ip())).is_err() {
        return Err(refuse(
            "key_guessing",
            "too many publish attempts from this address; wait a minute",
        ));
    }
    if key.len() > MAX_STREAM_NAME_BYTES {
        return Err(refuse("key_too_long", "stream key too long"));
    }
    let Some(route) = gw.routes.lookup(key) else {
        return Err(refuse("unknown_key", "stream key matches no room"));
    };
    tracing::Span::current().record("room", route.room.as_str());
    match Backend::open(&route.backend, key, BACKEND_SETUP_TIMEOUT).await {
        Ok(backend) => Ok(Relay::new(gw, backend, &route.room)),
        Err(Error::Backend {
            reason: "backend_refused",
            message,
            ..
        }) => Err(refuse(
            "backend_refused",
            &format!("the room refused the publish ({message})"),
        )),
        Err(e) => {
            if let Error::Backend { reason, .. } = &e {
                gw.metrics.relay_error(reason);
            }
            tracing::warn!(error = %e, "the room's media worker cannot be reached");
            Err(refuse(
                "backend_unavailable",
                "the room's media worker cannot be reached; try again",
            ))
        }
    }
}
