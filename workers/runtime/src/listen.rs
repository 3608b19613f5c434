//! What one network peer may hold of a listener, and the HTTP server every worker runs behind
//! it (the media origin, chat, `roomcast dev`).
//!
//! ```text
//!  accept ─► accept_retrying (EMFILE & co: back off, never end)
//!         ─► ConnectionGate::admit (caps in total and per client IP; optional eviction)
//!         ─► serve_http: hyper http1 with a header-read deadline and size, a whole-body
//!            deadline and size, WebSocket upgrades; the slot is held as long as the socket,
//!            upgraded ones included
//! ```
//!
//! Every refusal goes to the caller's [`OnRefused`] with a [`Refusal`], whose
//! [`label`](Refusal::label) is the `reason` of each worker's refused-connections counter;
//! [`OffenderLog`] keeps the log to one line per peer address a minute.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};

use crate::clientip::{TrustedProxies, limit_key};

/// HTTP connections in total: viewers' players each keep one or two keep-alive connections.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 16_384;
/// HTTP connections from one IP. Many viewers share one address behind a carrier-grade NAT, a
/// campus or an office proxy, so this is high; it stops one host from taking every slot.
pub const DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP: usize = 1024;
/// A client must send a whole request head within this time (slowloris).
pub const DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS: u64 = 10;
/// Largest request head. Browsers send 1–2 KiB, a CDN adds a few headers; nginx allows 32 KiB
/// (4 × 8 KiB) by default. hyper cannot go below 8 KiB.
pub const DEFAULT_HTTP_MAX_HEADER_BYTES: usize = 32 * 1024;
/// A request body must arrive whole within this time (a body sent a byte at a time).
pub const DEFAULT_HTTP_BODY_TIMEOUT_SECONDS: u64 = 30;
/// Largest request body. The only bodies the workers take are socket.io long-polling posts
/// (engine.io's own limit is 100 KB); nothing else has a body.
pub const DEFAULT_HTTP_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// hyper refuses a read buffer smaller than this.
const HYPER_MIN_BUF: usize = 8192;
/// How long open connections get to finish their request at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// First pause after a failed `accept()`; doubled on each failure in a row up to
/// [`ACCEPT_BACKOFF_MAX`]. EMFILE and friends clear when connections close, so the listener
/// waits and retries instead of ending.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Offenders remembered for [`OffenderLog`]; when full, the oldest entries are forgotten.
const OFFENDERS_REMEMBERED: usize = 1024;
/// A peer refused again within this time is counted but not logged again.
const OFFENDER_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The HTTP listener's limits (flags of every worker that serves HTTP, same names).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// HTTP connections in total.
    #[arg(long, env = "ROOMCAST_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// HTTP connections from one client IP.
    #[arg(long, env = "ROOMCAST_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP)]
    pub http_max_connections_per_ip: usize,
    /// Seconds a client has to send a whole HTTP request head.
    #[arg(long, env = "ROOMCAST_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS)]
    pub http_header_timeout_seconds: u64,
    /// Largest HTTP request head in bytes (at least 8192).
    #[arg(long, env = "ROOMCAST_HTTP_MAX_HEADER_BYTES", default_value_t = DEFAULT_HTTP_MAX_HEADER_BYTES)]
    pub http_max_header_bytes: usize,
    /// Seconds a client has to send a whole HTTP request body.
    #[arg(long, env = "ROOMCAST_HTTP_BODY_TIMEOUT_SECONDS", default_value_t = DEFAULT_HTTP_BODY_TIMEOUT_SECONDS)]
    pub http_body_timeout_seconds: u64,
    /// Largest HTTP request body in bytes.
    #[arg(long, env = "ROOMCAST_HTTP_MAX_BODY_BYTES", default_value_t = DEFAULT_HTTP_MAX_BODY_BYTES)]
    pub http_max_body_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            http_max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            http_max_connections_per_ip: DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP,
            http_header_timeout_seconds: DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS,
            http_max_header_bytes: DEFAULT_HTTP_MAX_HEADER_BYTES,
            http_body_timeout_seconds: DEFAULT_HTTP_BODY_TIMEOUT_SECONDS,
            http_max_body_bytes: DEFAULT_HTTP_MAX_BODY_BYTES,
        }
    }
}

impl HttpLimits {
    /// The flag and the problem of the first limit that cannot work.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let zero = [
            ("--http-max-connections", self.http_max_connections as u64),
            (
                "--http-max-connections-per-ip",
                self.http_max_connections_per_ip as u64,
            ),
            (
                "--http-header-timeout-seconds",
                self.http_header_timeout_seconds,
            ),
            (
                "--http-body-timeout-seconds",
                self.http_body_timeout_seconds,
            ),
            ("--http-max-body-bytes", self.http_max_body_bytes),
        ];
        if let Some((flag, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Some((flag, "must be at least 1".into()));
        }
        (self.http_max_header_bytes < HYPER_MIN_BUF).then(|| {
            (
                "--http-max-header-bytes",
                format!("must be at least {HYPER_MIN_BUF}"),
            )
        })
    }

    /// The gate these limits ask for.
    pub fn gate(&self) -> Arc<ConnectionGate> {
        ConnectionGate::new(self.http_max_connections, self.http_max_connections_per_ip)
    }

    /// The gate these limits ask for, with the per-IP cap not applied to `proxies`: behind an
    /// Ingress every viewer arrives from a few controller addresses, and the worker counts
    /// the client the proxy names per request instead.
    pub fn gate_exempting(&self, proxies: TrustedProxies) -> Arc<ConnectionGate> {
        ConnectionGate::build(
            self.http_max_connections,
            self.http_max_connections_per_ip,
            None,
            proxies,
        )
    }
}

/// Why a connection or request was refused or cut by this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    ConnectionsTotal,
    ConnectionsPerIp,
    /// Replaced at the total cap by a newer connection, not having settled in time.
    Evicted,
    HeaderTimeout,
    BodyTimeout,
    BodyTooLarge,
}

impl Refusal {
    /// Short stable label (the `reason` of the workers' refused-connections counters).
    pub fn label(self) -> &'static str {
        match self {
            Refusal::ConnectionsTotal => "connections_total",
            Refusal::ConnectionsPerIp => "connections_per_ip",
            Refusal::Evicted => "evicted_at_capacity",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BodyTooLarge => "body_too_large",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::ConnectionsTotal => "too many connections",
            Refusal::ConnectionsPerIp => "too many connections from this address",
            Refusal::Evicted => {
                "replaced by a newer connection at the connection cap (no publish yet)"
            }
            Refusal::HeaderTimeout => "HTTP request head not received in time",
            Refusal::BodyTimeout => "HTTP request body not received in time",
            Refusal::BodyTooLarge => "HTTP request body larger than the limit",
        })
    }
}

/// Told of every refusal: count it, and log it through an [`OffenderLog`].
pub type OnRefused = Arc<dyn Fn(SocketAddr, Refusal) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open connection under the gate.
struct Slot {
    ip: IpAddr,
    since: Instant,
    /// Doing what it came for (an accepted publish): never evicted.
    settled: bool,
    evict: Arc<Notify>,
}

#[derive(Default)]
struct Counts {
    next_id: u64,
    slots: HashMap<u64, Slot>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Counts {
    /// Whom a newcomer replaces at the cap: first, the oldest unsettled connection of the
    /// address holding the most unsettled connections, when that is more than one (whatever
    /// its age: an address that churns connections must not shelter behind their youth, and
    /// a newcomer from that address replaces its own sibling). When every address holds at
    /// most one, the oldest unsettled connection older than `after`. An honest publisher, alone
    /// on its address, is so the last to go, and only once it has had `after` to publish.
    fn victim(&self, now: Instant, after: Duration) -> Option<u64> {
        let mut unsettled: HashMap<IpAddr, usize> = HashMap::new();
        for slot in self.slots.values().filter(|s| !s.settled) {
            *unsettled.entry(slot.ip).or_default() += 1;
        }
        let heaviest = unsettled
            .iter()
            .filter(|(_, n)| **n > 1)
            .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip)))
            .map(|(ip, _)| *ip);
        self.slots
            .iter()
            .filter(|(_, s)| !s.settled)
            .filter(|(_, s)| match heaviest {
                Some(ip) => s.ip == ip,
                None => now.saturating_duration_since(s.since) >= after,
            })
            .min_by_key(|(id, s)| (s.since, **id))
            .map(|(id, _)| *id)
    }

    fn release(&mut self, id: u64) -> Option<Slot> {
        let slot = self.slots.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&slot.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&slot.ip);
            }
        }
        Some(slot)
    }
}

/// Connections open in total and per client IP. The maps hold only open connections, so they
/// are bounded by the total cap.
///
/// With eviction on (the RTMP listener), the total cap does not lock honest clients out: at
/// the cap, a new connection takes the slot of a connection that has not settled
/// ([`Admitted::settle`]: published), chosen by [`Counts::victim`] (the address holding the
/// most such connections gives one up first), and that connection is told to end
/// ([`Admitted::evicted`]).
pub struct ConnectionGate {
    max_total: usize,
    max_per_ip: usize,
    evict_after: Option<Duration>,
    /// Addresses the per-IP cap does not apply to (trusted proxies).
    exempt: TrustedProxies,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its slot.
pub struct Admitted {
    gate: Arc<ConnectionGate>,
    id: u64,
    evict: Arc<Notify>,
}

impl ConnectionGate {
    /// A gate that refuses at the caps.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Self::build(max_total, max_per_ip, None, TrustedProxies::default())
    }

    /// A gate that, at the total cap, evicts the oldest connection not settled after `after`.
    pub fn with_eviction(max_total: usize, max_per_ip: usize, after: Duration) -> Arc<Self> {
        Self::build(
            max_total,
            max_per_ip,
            Some(after),
            TrustedProxies::default(),
        )
    }

    fn build(
        max_total: usize,
        max_per_ip: usize,
        evict_after: Option<Duration>,
        exempt: TrustedProxies,
    ) -> Arc<Self> {
        Arc::new(ConnectionGate {
            max_total,
            max_per_ip,
            evict_after,
            exempt,
            counts: Mutex::default(),
        })
    }

    /// Take a slot for a connection from `ip` at `now`, or say which cap it is over.
    /// Connections are counted per [`limit_key`]: an IPv6 client by its /64.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let exempt = self.exempt.trusts(ip);
        let ip = limit_key(ip);
        let mut c = lock(&self.counts);
        if c.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip && !exempt {
            return Err(Refusal::ConnectionsPerIp);
        }
        if c.slots.len() >= self.max_total {
            let victim = self.evict_after.and_then(|after| c.victim(now, after));
            match victim.and_then(|id| c.release(id)) {
                // The evicted task sees the notification at its next poll; its slot is free now.
                Some(evicted) => evicted.evict.notify_one(),
                None => return Err(Refusal::ConnectionsTotal),
            }
        }
        let id = c.next_id;
        c.next_id += 1;
        let evict = Arc::new(Notify::new());
        c.slots.insert(
            id,
            Slot {
                ip,
                since: now,
                settled: false,
                evict: evict.clone(),
            },
        );
        *c.per_ip.entry(ip).or_default() += 1;
        Ok(Admitted {
            gate: self.clone(),
            id,
            evict,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.counts).slots.len()
    }
}

impl Admitted {
    /// The connection does what it came for: it keeps its slot.
    pub fn settle(&self) {
        if let Some(slot) = lock(&self.gate.counts).slots.get_mut(&self.id) {
            slot.settled = true;
        }
    }

    /// Resolves when a newer connection took this one's slot at the cap.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // An evicted connection's slot was released when it was evicted.
        lock(&self.gate.counts).release(self.id);
    }
}

/// Remembers when each offending address was last logged, so a peer that is refused a
/// thousand times a second is logged once a minute. Bounded: when full, entries older than the
/// interval go, and if none are, the whole map is forgotten (a flood of distinct addresses then
/// logs at most one line per address per refill).
#[derive(Default)]
pub struct OffenderLog {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl OffenderLog {
    /// Whether a refusal of `ip` at `now` should be logged.
    pub fn should_log(&self, ip: IpAddr, now: Instant) -> bool {
        // Per client as the limits count them, so walking a /64 does not buy a line an address.
        let ip = limit_key(ip);
        let mut last = lock(&self.last);
        if let Some(t) = last.get(&ip)
            && now.saturating_duration_since(*t) < OFFENDER_LOG_INTERVAL
        {
            return false;
        }
        if last.len() >= OFFENDERS_REMEMBERED && !last.contains_key(&ip) {
            last.retain(|_, t| now.saturating_duration_since(*t) < OFFENDER_LOG_INTERVAL);
            if last.len() >= OFFENDERS_REMEMBERED {
                last.clear();
            }
        }
        last.insert(ip, now);
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.last).len()
    }
}

/// A source of accepted connections: a [`tokio::net::TcpListener`], or in tests one that
/// fails on purpose.
pub trait Accept: Send + 'static {
    fn accept(
        &mut self,
    ) -> impl Future<Output = std::io::Result<(tokio::net::TcpStream, SocketAddr)>> + Send;
}

impl Accept for tokio::net::TcpListener {
    async fn accept(&mut self) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
        tokio::net::TcpListener::accept(self).await
    }
}

/// The next accepted connection. A failed `accept()` is logged (once per run of failures) and
/// retried after a pause that doubles up to [`ACCEPT_BACKOFF_MAX`]; it never ends the listener.
pub async fn accept_retrying(
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

/// An accepted connection, handed from an acceptor to a worker thread with its slot.
pub type Handoff = (std::net::TcpStream, SocketAddr, Admitted);

/// A thread running a single-threaded tokio runtime that serves the connections sent to it
/// with `serve`. Connections never move between threads afterwards (the nginx worker model):
/// a read wakes exactly one thread, with no work-stealing notifications to the others.
pub fn connection_thread<F, Fut>(
    name: String,
    serve: F,
) -> std::io::Result<(
    tokio::sync::mpsc::UnboundedSender<Handoff>,
    std::thread::JoinHandle<()>,
)>
where
    F: FnOnce(tokio::sync::mpsc::UnboundedReceiver<Handoff>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
    let span = tracing::Span::current();
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let _e = span.enter();
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(rx)),
            Err(e) => tracing::error!(error = %e, "cannot start a connection worker"),
        }
    })?;
    Ok((tx, thread))
}

/// Where [`serve_http`] runs connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// Tasks on the caller's runtime (chat: socketioxide and its adapters live there).
    Current,
    /// One single-threaded runtime per core, up to this many (the media origin: small playlist
    /// requests cost about half the context switches of the work-stealing runtime).
    PerCore(usize),
}

/// An HTTP listener: its gate, limits, refusal hook and workers.
#[derive(Clone)]
pub struct HttpServer {
    pub name: &'static str,
    pub gate: Arc<ConnectionGate>,
    pub limits: HttpLimits,
    pub on_refused: OnRefused,
    pub workers: Workers,
}

/// Serve `router` on `listener` until `stop` turns true, then give open requests
/// [`SHUTDOWN_GRACE`] to finish. Each request carries `ConnectInfo<SocketAddr>` of its peer;
/// WebSocket upgrades work, and an upgraded socket keeps its slot under the gate.
pub async fn serve_http(
    mut listener: impl Accept,
    router: Router,
    server: HttpServer,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    if let Workers::PerCore(max) = server.workers {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, max.max(1));
        for i in 0..n {
            let (router, server, stop) = (router.clone(), server.clone(), stop.clone());
            let (tx, thread) =
                connection_thread(format!("{}-{i}", server.name), move |mut rx| async move {
                    let mut connections = tokio::task::JoinSet::new();
                    while let Some((stream, peer, slot)) = rx.recv().await {
                        if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                            let connection = (stream, peer, slot);
                            spawn_connection(&mut connections, connection, &router, &server, &stop);
                        }
                    }
                    while connections.join_next().await.is_some() {}
                })?;
            senders.push(tx);
            threads.push(thread);
        }
    }
    let mut local = tokio::task::JoinSet::new();
    let mut next = 0usize;
    loop {
        let (stream, peer) = tokio::select! {
            a = accept_retrying(&mut listener, server.name) => a,
            _ = stop.changed() => break,
        };
        let slot = match server.gate.admit(peer.ip(), Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => {
                (server.on_refused)(peer, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if senders.is_empty() {
            spawn_connection(&mut local, (stream, peer, slot), &router, &server, &stop);
        } else if let Ok(stream) = stream.into_std() {
            let _ = senders[next % senders.len()].send((stream, peer, slot));
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
    while local.join_next().await.is_some() {}
    Ok(())
}

/// Serve one admitted connection as a task of `set`, reaping the tasks that finished.
fn spawn_connection(
    set: &mut tokio::task::JoinSet<()>,
    (stream, peer, slot): (tokio::net::TcpStream, SocketAddr, Admitted),
    router: &Router,
    server: &HttpServer,
    stop: &watch::Receiver<bool>,
) {
    set.spawn(serve_connection(
        stream,
        peer,
        slot,
        router.clone(),
        server.clone(),
        stop.clone(),
    ));
    while set.try_join_next().is_some() {}
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Admitted,
    router: Router,
    server: HttpServer,
    mut stop: watch::Receiver<bool>,
) {
    use tower::ServiceExt;
    let limits = &server.limits;
    let body_limits = BodyLimits {
        deadline: Duration::from_secs(limits.http_body_timeout_seconds),
        max_bytes: limits.http_max_body_bytes,
        peer,
        on_refused: server.on_refused.clone(),
    };
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let mut req = req.map(|body| Body::new(body_limits.wrap(body)));
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    // The slot travels with the socket, into an upgraded WebSocket too.
    let io = hyper_util::rt::TokioIo::new(Counted {
        inner: stream,
        _slot: slot,
    });
    // hyper enforces the header read timeout only with a timer.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.http_header_timeout_seconds))
        .max_buf_size(limits.http_max_header_bytes.max(HYPER_MIN_BUF))
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r && e.is_timeout() {
                (server.on_refused)(peer, Refusal::HeaderTimeout);
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// A socket that holds its place under the gate for as long as it lives.
struct Counted<S> {
    inner: S,
    _slot: Admitted,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The body limits of one connection's requests.
#[derive(Clone)]
struct BodyLimits {
    deadline: Duration,
    max_bytes: u64,
    peer: SocketAddr,
    on_refused: OnRefused,
}

impl BodyLimits {
    fn wrap<B>(&self, inner: B) -> LimitedBody<B> {
        LimitedBody {
            inner,
            read: 0,
            deadline: Box::pin(tokio::time::sleep(self.deadline)),
            limits: self.clone(),
            failed: false,
        }
    }
}

/// Why a request body was cut; what the handler reading it sees as the body's error.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body not received within {0:?}")]
    Timeout(Duration),
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Inner(axum::BoxError),
}

/// A request body that must arrive whole before a deadline counted from the request head,
/// and stay under a size. A per-read timeout would let a client trickle a byte at a time.
struct LimitedBody<B> {
    inner: B,
    read: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limits: BodyLimits,
    failed: bool,
}

impl<B> LimitedBody<B> {
    fn fail(
        &mut self,
        error: BodyError,
        refusal: Refusal,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failed = true;
        (self.limits.on_refused)(self.limits.peer, refusal);
        Poll::Ready(Some(Err(error)))
    }
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if let Some(declared) = self.inner.size_hint().exact()
            && declared > self.limits.max_bytes
        {
            let max = self.limits.max_bytes;
            return self.fail(BodyError::TooLarge(max), Refusal::BodyTooLarge);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    if self.read > self.limits.max_bytes {
                        let max = self.limits.max_bytes;
                        return self.fail(BodyError::TooLarge(max), Refusal::BodyTooLarge);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Inner(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let deadline = self.limits.deadline;
                    self.fail(BodyError::Timeout(deadline), Refusal::BodyTimeout)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
