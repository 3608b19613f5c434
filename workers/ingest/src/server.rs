//! What every connection of the gateway shares: the routes, the connection caps, the
//! key-attempt limiter, metrics, and the drain state. [`Gateway::serve`] runs one listener.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use roomcast_rtmp::limits::{self, ConnectionGate, OffenderLog, RtmpLimits, SessionLimits};
use roomcast_runtime::listen::{Accept, accept_retrying};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::metrics::{ListenerLabels, Metrics};
use crate::routes::Routes;
use crate::tls::TlsFiles;

/// Publish attempts one client address may make a minute. OBS retries a failed connection
/// every 10 s by default and a studio may run a few encoders behind one address; 20 lets that
/// through, while a guesser from one address gets 20 tries a minute at a random key.
pub const DEFAULT_KEY_ATTEMPTS_PER_MINUTE: u32 = 20;
/// See [`GatewayOptions::backend_write_timeout`].
pub const DEFAULT_BACKEND_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the key-attempt limiter forgets addresses that have been quiet for a minute, so
/// its memory is bounded by the addresses of the last minute.
const LIMITER_SWEEP: Duration = Duration::from_secs(60);

/// Which protocol a listener speaks.
#[derive(Clone)]
pub enum ListenerKind {
    Rtmp,
    Rtmps(Arc<TlsFiles>),
}

impl ListenerKind {
    pub fn name(&self) -> &'static str {
        match self {
            ListenerKind::Rtmp => "rtmp",
            ListenerKind::Rtmps(_) => "rtmps",
        }
    }
}

/// How a gateway behaves (the flags, minus the listen addresses and sources).
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub limits: RtmpLimits,
    pub proxy_protocol: bool,
    pub key_attempts_per_minute: u32,
    /// A backend that accepts no bytes for this long ends the relay (`backend_slow`). Not a
    /// flag: the media worker stalls its socket only while its transcoder catches up, for well
    /// under the default.
    pub backend_write_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            limits: RtmpLimits::default(),
            proxy_protocol: false,
            key_attempts_per_minute: DEFAULT_KEY_ATTEMPTS_PER_MINUTE,
            backend_write_timeout: DEFAULT_BACKEND_WRITE_TIMEOUT,
        }
    }
}

/// The gateway's shared state.
pub struct Gateway {
    pub routes: Arc<Routes>,
    pub metrics: Metrics,
    pub(crate) options: GatewayOptions,
    pub(crate) session: SessionLimits,
    pub(crate) gate: Arc<ConnectionGate>,
    pub(crate) offenders: OffenderLog,
    pub(crate) key_attempts: DefaultKeyedRateLimiter<IpAddr>,
    /// Connections still reading their PROXY header (not yet under the per-address cap, which
    /// needs the address the header names). They all come from the balancer, so at the cap the
    /// oldest one gives way: connections that never send a header cannot lock the others out.
    pub(crate) unidentified: Arc<ConnectionGate>,
    /// Set when the drain starts: the acceptors stop.
    drain_tx: watch::Sender<bool>,
    listeners_up: AtomicUsize,
    /// Set at the end of the drain: every connection closes.
    stop_tx: watch::Sender<bool>,
}

impl Gateway {
    pub fn new(options: GatewayOptions) -> Result<Arc<Self>> {
        if let Some((field, problem)) = options.limits.problem() {
            return Err(Error::config(field, problem));
        }
        let per_minute = NonZeroU32::new(options.key_attempts_per_minute)
            .ok_or_else(|| Error::config("--key-attempts-per-minute", "must be at least 1"))?;
        let (stop_tx, _) = watch::channel(false);
        let (drain_tx, _) = watch::channel(false);
        Ok(Arc::new(Gateway {
            routes: Arc::default(),
            metrics: Metrics::default(),
            session: options.limits.session(),
            gate: options.limits.gate(),
            offenders: OffenderLog::default(),
            key_attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
            unidentified: ConnectionGate::with_eviction(
                options.limits.rtmp_max_connections,
                usize::MAX,
                Duration::from_secs(options.limits.rtmp_evict_after_seconds),
            ),
            options,
            drain_tx,
            listeners_up: AtomicUsize::new(0),
            stop_tx,
        }))
    }

    /// Count a refusal on `listener` and log it once per offender.
    pub(crate) fn refused(
        &self,
        listener: &'static str,
        peer: SocketAddr,
        reason: &'static str,
        what: &dyn std::fmt::Display,
    ) {
        limits::refused(
            &self.metrics.refusals,
            &self.offenders,
            listener,
            peer,
            reason,
            what,
        );
    }

    /// Resolves when every connection must close (end of the drain).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }

    pub fn is_draining(&self) -> bool {
        *self.drain_tx.borrow()
    }

    /// Why this replica should not get new publishers, if it should not.
    pub fn readiness(&self) -> Result<(), Cow<'static, str>> {
        if self.is_draining() {
            return Err("draining".into());
        }
        if self.listeners_up.load(Ordering::SeqCst) == 0 {
            return Err("no listener up".into());
        }
        if !self.routes.is_loaded() {
            return Err("no routing table or routing key loaded yet".into());
        }
        Ok(())
    }

    /// Accept connections on `listener` until the drain starts.
    pub async fn serve(self: Arc<Self>, mut listener: impl Accept, kind: ListenerKind) {
        let name = kind.name();
        self.listeners_up.fetch_add(1, Ordering::SeqCst);
        let mut stop = self.stopping();
        let mut draining = self.drain_tx.subscribe();
        let mut sweep = tokio::time::interval(LIMITER_SWEEP);
        loop {
            let (stream, peer) = tokio::select! {
                a = accept_retrying(&mut listener, name) => a,
                _ = draining.changed() => break,
                _ = stop.changed() => break,
                _ = sweep.tick() => {
                    self.key_attempts.retain_recent();
                    continue;
                }
            };
            self.metrics
                .connections
                .get_or_create(&ListenerLabels { listener: name })
                .inc();
            tokio::spawn(crate::connection::handle(
                self.clone(),
                stream,
                peer,
                kind.clone(),
            ));
        }
        self.listeners_up.fetch_sub(1, Ordering::SeqCst);
    }

    /// Stop accepting (readiness goes false), let relays run until none is left or `deadline`
    /// passed, then close every connection.
    pub async fn drain(&self, deadline: Duration) {
        self.drain_tx.send_replace(true);
        let until = Instant::now() + deadline;
        tracing::info!(
            relays = self.metrics.active_relays.get(),
            deadline_seconds = deadline.as_secs(),
            "draining: no new connections; relays finish or are closed at the deadline"
        );
        while self.metrics.active_relays.get() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop_tx.send(true);
    }
}
