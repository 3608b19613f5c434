//! A room and what its handlers share: the room to serve ([`RoomChat`]), the limits and
//! timings of a server ([`ChatOptions`]), and the live state of one served room (`RoomState`:
//! its store key, rate limiter, slow mode, presence, drain flag). The builder in `server`
//! creates it; the socket.io handlers in `connect` and `requests` read and update it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use roomcast_crds::{ChatSpec, RoomIdentity};
use tokio::sync::{Notify, watch};

use roomcast_runtime::clientip::{TrustedProxies, limit_key};

use crate::{
    error::{Error, Result},
    metrics::{ChatMetrics, ReasonLabels, RoomLabels},
    presence::Presence,
    ratelimit::{RateLimiter, Refusal},
    sharedlimit::SharedLimiter,
    store::{DynStore, RoomKey},
    token::SigningKey,
};

pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 50;
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 64 * 1024;
/// History a join receives, in JSON bytes: 64 KiB holds the default 100 messages at 500
/// characters each (about 600 bytes a message), so honest rooms see their whole history;
/// rooms of long messages get the newest that fit.
pub const DEFAULT_MAX_HISTORY_BYTES: usize = 64 * 1024;
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PRESENCE_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_PRESENCE_DEBOUNCE: Duration = Duration::from_millis(250);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest slow-mode interval a moderator may set.
pub const MAX_SLOW_MODE_SECONDS: u32 = 3600;

/// One room to serve.
#[derive(Clone, Debug)]
pub struct RoomChat {
    pub id: RoomIdentity,
    pub spec: ChatSpec,
    pub signing_key: SigningKey,
}

impl RoomChat {
    /// The socket.io `path` clients use: `/<namespace>/<room>/chat/socket.io`.
    pub fn socket_io_path(&self) -> String {
        format!("{}/chat/socket.io", self.id.path_prefix())
    }

    /// Names that fit in a URL path and a store key, and limits that let anyone post. (Looser
    /// than `RoomIdentity`'s `FromStr`, which takes DNS-1123 labels only: Kubernetes object
    /// names may also hold dots.)
    pub(crate) fn validate(&self) -> Result<()> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        };
        if !ok(&self.id.namespace) {
            return Err(Error::Config {
                field: "room.namespace",
                message: format!("{:?} is not a Kubernetes name", self.id.namespace),
            });
        }
        if !ok(&self.id.name) {
            return Err(Error::Config {
                field: "room.name",
                message: format!("{:?} is not a Kubernetes name", self.id.name),
            });
        }
        if self.spec.max_message_length == 0 {
            return Err(Error::Config {
                field: "chat.maxMessageLength",
                message: "must be at least 1".into(),
            });
        }
        if self.spec.rate_limit_per_minute == 0 {
            return Err(Error::Config {
                field: "chat.rateLimitPerMinute",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Limits and timings shared by every room of a server.
#[derive(Clone, Debug)]
pub struct ChatOptions {
    /// Sockets one client IP may hold across all rooms; 0 disables the limit.
    pub max_connections_per_ip: u32,
    /// Proxies whose `X-Forwarded-For` names the client (empty: the socket peer is the client).
    pub trusted_proxies: TrustedProxies,
    /// JSON bytes of history a joining socket receives (newest messages kept).
    pub max_history_bytes: usize,
    /// Largest websocket message / polling payload, in bytes.
    pub max_frame_bytes: u64,
    /// Heartbeat: a client that does not answer a ping within `ping_timeout` is dropped.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Time a client has to join the namespace after the handshake.
    pub connect_timeout: Duration,
    /// How often the cross-replica viewer count is recomputed (also the slow-mode refresh).
    pub presence_interval: Duration,
    /// Wait after a local join/leave before recounting, to batch bursts.
    pub presence_debounce: Duration,
    /// How long shutdown waits for in-flight writes.
    pub shutdown_grace: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            trusted_proxies: TrustedProxies::default(),
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            presence_interval: DEFAULT_PRESENCE_INTERVAL,
            presence_debounce: DEFAULT_PRESENCE_DEBOUNCE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// What [`IpLimiter::try_acquire`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IpAdmit {
    Counted,
    /// At the limit; `first` is true for the first refusal since the address last had room
    /// (log that one, not every retry).
    Refused {
        first: bool,
    },
}

#[derive(Debug, Default)]
struct IpCount {
    sockets: u32,
    refusal_logged: bool,
}

/// Sockets per client IP (IPv6: per /64), shared by all rooms of a server.
#[derive(Debug, Default)]
pub(crate) struct IpLimiter {
    limit: u32,
    counts: Mutex<HashMap<IpAddr, IpCount>>,
}

impl IpLimiter {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit,
            counts: Mutex::default(),
        }
    }

    /// Count one more socket for `ip`; refused (and nothing counted) past the limit.
    pub(crate) fn try_acquire(&self, ip: IpAddr) -> IpAdmit {
        if self.limit == 0 {
            return IpAdmit::Counted;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(limit_key(ip)).or_default();
        if n.sockets >= self.limit {
            let first = !n.refusal_logged;
            n.refusal_logged = true;
            return IpAdmit::Refused { first };
        }
        n.sockets += 1;
        IpAdmit::Counted
    }

    pub(crate) fn release(&self, ip: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let key = limit_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            n.sockets = n.sockets.saturating_sub(1);
            n.refusal_logged = false;
            if n.sockets == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// Everything a room's handlers share.
pub(crate) struct RoomState {
    pub(crate) config: RoomChat,
    pub(crate) key: RoomKey,
    pub(crate) store: DynStore,
    pub(crate) options: ChatOptions,
    pub(crate) ip_limits: Arc<IpLimiter>,
    pub(crate) metrics: ChatMetrics,
    pub(crate) labels: RoomLabels,
    /// This replica's limiter: the only one without Redis, the fallback with it.
    pub(crate) limiter: Mutex<RateLimiter>,
    /// The room's limiter shared by every replica (with Redis).
    pub(crate) shared_limiter: Option<SharedLimiter>,
    pub(crate) slow_mode: AtomicU32,
    pub(crate) live: AtomicBool,
    pub(crate) local_sockets: AtomicU32,
    pub(crate) presence: watch::Sender<Presence>,
    pub(crate) presence_changed: Notify,
    pub(crate) draining: AtomicBool,
    pub(crate) inflight: AtomicUsize,
}

impl RoomState {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Counts a write in flight until dropped, so shutdown can wait for it.
    pub(crate) fn inflight(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.clone())
    }

    /// Take one post from `user`'s allowance: in Redis when configured, so replicas share it;
    /// in this replica when there is no Redis or it does not answer (fail open: counted in
    /// `rate_limit_fallbacks_total`, logged once per outage).
    pub(crate) async fn check_rate(&self, user: &str, slow_mode: Duration) -> Result<(), Refusal> {
        if let Some(shared) = &self.shared_limiter {
            match shared.check(user, slow_mode).await {
                Ok(decided) => {
                    if shared.set_degraded(false) {
                        tracing::info!("Redis answers again: rate limits are shared by replicas");
                    }
                    return decided;
                }
                Err(e) => {
                    self.metrics
                        .rate_limit_fallbacks
                        .get_or_create(&self.labels)
                        .inc();
                    if shared.set_degraded(true) {
                        tracing::warn!(
                            error = %e,
                            "Redis does not answer: rate limits fall back to this replica's"
                        );
                    }
                }
            }
        }
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(user, Instant::now(), slow_mode)
    }

    pub(crate) fn reason_labels(&self, reason: &str) -> ReasonLabels {
        ReasonLabels {
            namespace: self.labels.namespace.clone(),
            room: self.labels.room.clone(),
            reason: reason.to_owned(),
        }
    }
}

pub(crate) struct InflightGuard(Arc<RoomState>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_limit_counts_and_releases_per_address() {
        let limits = IpLimiter::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(limits.try_acquire(a), IpAdmit::Counted);
        assert_eq!(limits.try_acquire(a), IpAdmit::Counted);
        assert_eq!(limits.try_acquire(a), IpAdmit::Refused { first: true });
        assert_eq!(limits.try_acquire(a), IpAdmit::Refused { first: false });
        assert_eq!(limits.try_acquire(b), IpAdmit::Counted);
        limits.release(a);
        assert_eq!(limits.try_acquire(a), IpAdmit::Counted);
        assert_eq!(
            limits.try_acquire(a),
            IpAdmit::Refused { first: true },
            "logged again after the address had room"
        );
        assert_eq!(IpLimiter::new(0).try_acquire(a), IpAdmit::Counted);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let limits = IpLimiter::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(limits.try_acquire(ip("2001:db8:1:2::1")), IpAdmit::Counted);
        assert_eq!(
            limits.try_acquire(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            IpAdmit::Counted
        );
        assert_eq!(
            limits.try_acquire(ip("2001:db8:1:2:dead:beef::7")),
            IpAdmit::Refused { first: true },
            "a new address in the same /64 is the same client"
        );
        assert_eq!(limits.try_acquire(ip("2001:db8:1:3::1")), IpAdmit::Counted);
        limits.release(ip("2001:db8:1:2::abcd"));
        assert_eq!(limits.try_acquire(ip("2001:db8:1:2::1")), IpAdmit::Counted);

        assert_eq!(limits.try_acquire(ip("198.51.100.1")), IpAdmit::Counted);
        assert_eq!(
            limits.try_acquire(ip("::ffff:198.51.100.1")),
            IpAdmit::Counted
        );
        assert_eq!(
            limits.try_acquire(ip("198.51.100.1")),
            IpAdmit::Refused { first: true }
        );
    }
}
