//! Listener limits: what one network peer may hold of the worker. [`ListenerLimits`] are the
//! flags; [`ConnectionGate`] caps connections in total and per client IP; [`OffenderLog`] logs a
//! refusal once per peer address (not once per packet); [`Limit`] names the reason, the `reason`
//! label of `roomcast_media_refused_connections_total`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Publisher connections in total. One room has one publisher; a worker in `roomcast dev`
/// serves a handful of rooms, so 256 leaves room for reconnects and probes of every room.
pub const DEFAULT_RTMP_MAX_CONNECTIONS: usize = 256;
/// Publisher connections from one IP. OBS reconnects one connection at a time, but the dead
/// one may linger until its idle deadline and a studio may run several encoders behind one
/// address: 16 lets a reconnect storm of a few encoders through.
pub const DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP: usize = 16;
/// From TCP accept to the end of the RTMP handshake (OBS and ffmpeg finish it in one round trip).
pub const DEFAULT_RTMP_HANDSHAKE_TIMEOUT_SECONDS: u64 = 10;
/// From TCP accept to an accepted `publish` (connect, releaseStream, FCPublish, createStream,
/// publish: a few round trips, even over a slow uplink).
pub const DEFAULT_RTMP_PUBLISH_TIMEOUT_SECONDS: u64 = 30;
/// A publisher that delivers no audio or video for this long is cut; other bytes (pings,
/// acknowledgements, padding) do not count.
pub const DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS: u64 = 30;
/// Largest RTMP message. A keyframe of a 20 Mbit/s 4K stream is 2 to 4 MiB; the protocol
/// allows 16 MiB, which a hostile peer would otherwise make each connection buffer.
pub const DEFAULT_RTMP_MAX_MESSAGE_BYTES: u32 = 8 * 1024 * 1024;
/// HTTP connections in total: viewers' players each keep one or two keep-alive connections.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 16_384;
/// HTTP connections from one IP. Many viewers share one address behind a carrier-grade NAT, a
/// campus or an office proxy, so this is high; it stops one host from taking every slot.
pub const DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP: usize = 1024;
/// A client must send a whole request head within this time (slowloris).
pub const DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS: u64 = 10;
/// Offenders remembered for [`OffenderLog`]; when full, the oldest entries are forgotten.
const OFFENDERS_REMEMBERED: usize = 1024;
/// A peer refused again within this time is counted but not logged again.
const OFFENDER_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The listeners' limits (flags of `roomcast-media` and `roomcast dev`, same names).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// RTMP connections in total.
    #[arg(long, env = "ROOMCAST_RTMP_MAX_CONNECTIONS", default_value_t = DEFAULT_RTMP_MAX_CONNECTIONS)]
    pub rtmp_max_connections: usize,
    /// RTMP connections from one client IP.
    #[arg(long, env = "ROOMCAST_RTMP_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP)]
    pub rtmp_max_connections_per_ip: usize,
    /// Seconds from TCP accept to the end of the RTMP handshake.
    #[arg(long, env = "ROOMCAST_RTMP_HANDSHAKE_TIMEOUT_SECONDS", default_value_t = DEFAULT_RTMP_HANDSHAKE_TIMEOUT_SECONDS)]
    pub rtmp_handshake_timeout_seconds: u64,
    /// Seconds from TCP accept to an accepted publish.
    #[arg(long, env = "ROOMCAST_RTMP_PUBLISH_TIMEOUT_SECONDS", default_value_t = DEFAULT_RTMP_PUBLISH_TIMEOUT_SECONDS)]
    pub rtmp_publish_timeout_seconds: u64,
    /// Seconds a publisher may go without delivering audio or video.
    #[arg(long, env = "ROOMCAST_RTMP_IDLE_TIMEOUT_SECONDS", default_value_t = DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS)]
    pub rtmp_idle_timeout_seconds: u64,
    /// Largest RTMP message in bytes (also the most one connection buffers).
    #[arg(long, env = "ROOMCAST_RTMP_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_RTMP_MAX_MESSAGE_BYTES)]
    pub rtmp_max_message_bytes: u32,
    /// HTTP connections in total.
    #[arg(long, env = "ROOMCAST_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// HTTP connections from one client IP.
    #[arg(long, env = "ROOMCAST_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP)]
    pub http_max_connections_per_ip: usize,
    /// Seconds a client has to send a whole HTTP request head.
    #[arg(long, env = "ROOMCAST_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS)]
    pub http_header_timeout_seconds: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            rtmp_max_connections: DEFAULT_RTMP_MAX_CONNECTIONS,
            rtmp_max_connections_per_ip: DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP,
            rtmp_handshake_timeout_seconds: DEFAULT_RTMP_HANDSHAKE_TIMEOUT_SECONDS,
            rtmp_publish_timeout_seconds: DEFAULT_RTMP_PUBLISH_TIMEOUT_SECONDS,
            rtmp_idle_timeout_seconds: DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS,
            rtmp_max_message_bytes: DEFAULT_RTMP_MAX_MESSAGE_BYTES,
            http_max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            http_max_connections_per_ip: DEFAULT_HTTP_MAX_CONNECTIONS_PER_IP,
            http_header_timeout_seconds: DEFAULT_HTTP_HEADER_TIMEOUT_SECONDS,
        }
    }
}

impl ListenerLimits {
    /// Refuse zero limits at start, naming the flag.
    pub fn validate(&self) -> crate::Result<()> {
        let checks = [
            ("--rtmp-max-connections", self.rtmp_max_connections as u64),
            (
                "--rtmp-max-connections-per-ip",
                self.rtmp_max_connections_per_ip as u64,
            ),
            (
                "--rtmp-handshake-timeout-seconds",
                self.rtmp_handshake_timeout_seconds,
            ),
            (
                "--rtmp-publish-timeout-seconds",
                self.rtmp_publish_timeout_seconds,
            ),
            (
                "--rtmp-idle-timeout-seconds",
                self.rtmp_idle_timeout_seconds,
            ),
            (
                "--rtmp-max-message-bytes",
                u64::from(self.rtmp_max_message_bytes),
            ),
            ("--http-max-connections", self.http_max_connections as u64),
            (
                "--http-max-connections-per-ip",
                self.http_max_connections_per_ip as u64,
            ),
            (
                "--http-header-timeout-seconds",
                self.http_header_timeout_seconds,
            ),
        ];
        match checks.iter().find(|(_, v)| *v == 0) {
            Some((field, _)) => Err(crate::Error::config(*field, "must be at least 1")),
            None => Ok(()),
        }
    }

    /// The deadlines and sizes the RTMP core enforces.
    pub fn session(&self) -> SessionLimits {
        SessionLimits {
            handshake: Duration::from_secs(self.rtmp_handshake_timeout_seconds),
            publish: Duration::from_secs(self.rtmp_publish_timeout_seconds),
            idle: Duration::from_secs(self.rtmp_idle_timeout_seconds),
            max_message_bytes: self.rtmp_max_message_bytes,
        }
    }
}

/// What the sans-I/O RTMP core enforces on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub handshake: Duration,
    pub publish: Duration,
    pub idle: Duration,
    pub max_message_bytes: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        ListenerLimits::default().session()
    }
}

/// Why a connection was refused or cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    ConnectionsTotal,
    ConnectionsPerIp,
    HandshakeTimeout,
    PublishTimeout,
    IdleTimeout,
    MessageTooLarge,
    HeaderTimeout,
    /// The RTMP library panicked on this connection's input.
    LibraryPanic,
}

impl Limit {
    /// Short stable label (`reason` of `roomcast_media_refused_connections_total`).
    pub fn label(self) -> &'static str {
        match self {
            Limit::ConnectionsTotal => "connections_total",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::PublishTimeout => "publish_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MessageTooLarge => "message_too_large",
            Limit::HeaderTimeout => "header_timeout",
            Limit::LibraryPanic => "library_panic",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::ConnectionsTotal => "too many connections",
            Limit::ConnectionsPerIp => "too many connections from this address",
            Limit::HandshakeTimeout => "RTMP handshake not finished in time",
            Limit::PublishTimeout => "no publish in time",
            Limit::IdleTimeout => "no audio or video in time",
            Limit::MessageTooLarge => "RTMP message larger than the limit",
            Limit::HeaderTimeout => "HTTP request head not received in time",
            Limit::LibraryPanic => "the RTMP library panicked on this input",
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Connections open in total and per client IP. The map holds only addresses with open
/// connections, so it is bounded by the total cap.
pub struct ConnectionGate {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// One admitted connection; dropping it frees its slot.
pub struct Admitted {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
}

impl ConnectionGate {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionGate {
            max_total,
            max_per_ip,
            counts: Mutex::default(),
        })
    }

    /// Take a slot for a connection from `ip`, or say which cap it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Limit> {
        let mut c = lock(&self.counts);
        if c.total >= self.max_total {
            return Err(Limit::ConnectionsTotal);
        }
        let n = c.per_ip.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return Err(Limit::ConnectionsPerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Admitted {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut c = lock(&self.gate.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
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

/// Count a refusal by listener and reason and log it once per offender.
pub(crate) fn refused(
    metrics: &crate::metrics::Metrics,
    log: &OffenderLog,
    listener: &'static str,
    peer: std::net::SocketAddr,
    limit: Limit,
) {
    metrics
        .refused_connections
        .get_or_create(&crate::metrics::LimitLabels {
            listener,
            reason: limit.label(),
        })
        .inc();
    if log.should_log(peer.ip(), Instant::now()) {
        tracing::warn!(%peer, listener, reason = limit.label(), "connection refused: {limit} (logged once a minute per address)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_per_ip_cap_refuses_only_that_address() {
        let gate = ConnectionGate::new(10, 2);
        let a = gate.admit(ip(1)).expect("first");
        let _b = gate.admit(ip(1)).expect("second");
        assert_eq!(gate.admit(ip(1)).err(), Some(Limit::ConnectionsPerIp));
        let _c = gate.admit(ip(2)).expect("other address");
        drop(a);
        assert!(
            gate.admit(ip(1)).is_ok(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn the_total_cap_refuses_every_address() {
        let gate = ConnectionGate::new(2, 2);
        let _a = gate.admit(ip(1)).expect("a");
        let _b = gate.admit(ip(2)).expect("b");
        assert_eq!(gate.admit(ip(3)).err(), Some(Limit::ConnectionsTotal));
        assert_eq!(gate.open(), 2);
    }

    #[test]
    fn the_gate_forgets_addresses_without_connections() {
        let gate = ConnectionGate::new(100_000, 1);
        for i in 0..=255 {
            drop(gate.admit(ip(i)).expect("admit"));
        }
        assert_eq!(gate.open(), 0);
        assert!(lock(&gate.counts).per_ip.is_empty());
    }

    #[test]
    fn an_offender_is_logged_once_a_minute() {
        let log = OffenderLog::default();
        let t0 = Instant::now();
        assert!(log.should_log(ip(1), t0));
        for s in 1..60 {
            assert!(!log.should_log(ip(1), t0 + Duration::from_secs(s)));
        }
        assert!(log.should_log(ip(2), t0), "another address is logged");
        assert!(log.should_log(ip(1), t0 + Duration::from_secs(61)));
    }

    #[test]
    fn the_offender_log_stays_bounded_under_a_flood_of_addresses() {
        let log = OffenderLog::default();
        let t0 = Instant::now();
        for i in 0..(OFFENDERS_REMEMBERED as u32 * 5) {
            log.should_log(IpAddr::from(i.to_be_bytes()), t0);
            assert!(log.len() <= OFFENDERS_REMEMBERED);
        }
    }

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        let limits = ListenerLimits {
            rtmp_max_connections_per_ip: 0,
            ..ListenerLimits::default()
        };
        let err = limits.validate().expect_err("zero").to_string();
        assert!(err.contains("--rtmp-max-connections-per-ip"), "{err}");
        ListenerLimits::default()
            .validate()
            .expect("defaults are valid");
    }
}
