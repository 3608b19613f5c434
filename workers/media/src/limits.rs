//! Listener limits: what one network peer may hold of the worker. [`ListenerLimits`] are the
//! flags; [`ConnectionGate`] caps connections in total and per client IP; [`OffenderLog`] logs a
//! refusal once per peer address (not once per packet); [`Limit`] names the reason, the `reason`
//! label of `roomcast_media_refused_connections_total`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
/// At the total cap, a new publisher takes the slot of the oldest connection that has been
/// connected this long without publishing. OBS and ffmpeg publish within a few round trips
/// (well under a second), so 3 s spares honest publishers still setting up, while connections
/// that only hold a slot give way to the next one: filling the cap then takes more than
/// `--rtmp-max-connections` / 3 new connections a second, from at least
/// `--rtmp-max-connections` / `--rtmp-max-connections-per-ip` addresses.
pub const DEFAULT_RTMP_EVICT_AFTER_SECONDS: u64 = 3;
/// A source that sends no keyframe for this long (or for four segment lengths, whichever is
/// longer) is cut: its open segment cannot close, so it would only grow. OBS's "auto" keyframe
/// interval is 250 frames (8.3 s at 30 fps, 10.4 s at 24 fps), which 20 s lets through.
pub const DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS: u64 = 20;
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
    /// At the total cap, a new connection replaces the oldest one that has not published
    /// after this many seconds.
    #[arg(long, env = "ROOMCAST_RTMP_EVICT_AFTER_SECONDS", default_value_t = DEFAULT_RTMP_EVICT_AFTER_SECONDS)]
    pub rtmp_evict_after_seconds: u64,
    /// Seconds a publishing source may go without a keyframe (at least four segment lengths).
    #[arg(long, env = "ROOMCAST_RTMP_KEYFRAME_TIMEOUT_SECONDS", default_value_t = DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS)]
    pub rtmp_keyframe_timeout_seconds: u64,
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
            rtmp_evict_after_seconds: DEFAULT_RTMP_EVICT_AFTER_SECONDS,
            rtmp_keyframe_timeout_seconds: DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS,
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
                "--rtmp-evict-after-seconds",
                self.rtmp_evict_after_seconds,
            ),
            (
                "--rtmp-keyframe-timeout-seconds",
                self.rtmp_keyframe_timeout_seconds,
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
    /// The source sent no keyframe for too long: its open segment could only grow.
    NoKeyframe,
    /// The ingest average stayed above `maxBitrateKbps` (plus tolerance) for too long.
    BitrateExceeded,
    /// Replaced at the total cap by a newer connection, not having published in time.
    Evicted,
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
            Limit::Evicted => "evicted_at_capacity",
            Limit::NoKeyframe => "no_keyframe",
            Limit::BitrateExceeded => "bitrate_exceeded",
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
            Limit::NoKeyframe => "no keyframe from the source for too long",
            Limit::BitrateExceeded => "ingest bitrate stayed above maxBitrateKbps",
            Limit::Evicted => "replaced by a newer connection at the connection cap (no publish yet)",
            Limit::HeaderTimeout => "HTTP request head not received in time",
            Limit::LibraryPanic => "the RTMP library panicked on this input",
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open connection under the gate.
struct Slot {
    ip: IpAddr,
    since: Instant,
    /// Publishing: never evicted.
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
/// With eviction on (the RTMP listener), the total cap does not lock honest publishers out:
/// at the cap, a new connection takes the slot of the oldest one that has been open for the
/// eviction grace without publishing ([`Admitted::settle`]), and that connection is told to
/// end ([`Admitted::evicted`]).
pub struct ConnectionGate {
    max_total: usize,
    max_per_ip: usize,
    evict_after: Option<Duration>,
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
        Self::build(max_total, max_per_ip, None)
    }

    /// A gate that, at the total cap, evicts the oldest connection not settled after `after`.
    pub fn with_eviction(max_total: usize, max_per_ip: usize, after: Duration) -> Arc<Self> {
        Self::build(max_total, max_per_ip, Some(after))
    }

    fn build(max_total: usize, max_per_ip: usize, evict_after: Option<Duration>) -> Arc<Self> {
        Arc::new(ConnectionGate {
            max_total,
            max_per_ip,
            evict_after,
            counts: Mutex::default(),
        })
    }

    /// Take a slot for a connection from `ip` at `now`, or say which cap it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Limit> {
        let mut c = lock(&self.counts);
        if c.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Limit::ConnectionsPerIp);
        }
        if c.slots.len() >= self.max_total {
            let victim = self.evict_after.and_then(|after| {
                c.slots
                    .iter()
                    .filter(|(_, s)| !s.settled && now.saturating_duration_since(s.since) >= after)
                    .min_by_key(|(id, s)| (s.since, **id))
                    .map(|(id, _)| *id)
            });
            match victim.and_then(|id| c.release(id)) {
                // The evicted task sees the notification at its next poll; its slot is free now.
                Some(evicted) => evicted.evict.notify_one(),
                None => return Err(Limit::ConnectionsTotal),
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
    /// The connection does what it came for (an accepted publish): it keeps its slot.
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

    impl ConnectionGate {
        fn admit_now(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Limit> {
            self.admit(ip, Instant::now())
        }
    }

    /// Whether the connection was told to end, without waiting.
    fn was_evicted(slot: &Admitted) -> bool {
        use futures::FutureExt;
        slot.evicted().now_or_never().is_some()
    }

    #[test]
    fn at_the_cap_the_oldest_connection_without_publish_gives_way() {
        let grace = Duration::from_secs(3);
        let gate = ConnectionGate::with_eviction(3, 3, grace);
        let t0 = Instant::now();
        let oldest = gate.admit(ip(1), t0).expect("a");
        let publisher = gate.admit(ip(2), t0).expect("b");
        publisher.settle();
        let newer = gate.admit(ip(3), t0 + Duration::from_secs(1)).expect("c");
        // Within the grace nobody gives way: the cap refuses.
        assert_eq!(
            gate.admit(ip(4), t0 + Duration::from_secs(2)).err(),
            Some(Limit::ConnectionsTotal)
        );
        let honest = gate
            .admit(ip(4), t0 + Duration::from_secs(3))
            .expect("the oldest idle connection gives way");
        assert!(was_evicted(&oldest), "the oldest unsettled one is told to end");
        assert!(!was_evicted(&publisher) && !was_evicted(&newer) && !was_evicted(&honest));
        assert_eq!(gate.open(), 3);
        // Its drop does not free a second slot.
        drop(oldest);
        assert_eq!(gate.open(), 3);
        // The publisher is never evicted, whatever its age; the next oldest idle one is.
        let _next = gate
            .admit(ip(5), t0 + Duration::from_secs(60))
            .expect("admit");
        assert!(was_evicted(&newer) && !was_evicted(&publisher));
    }

    #[test]
    fn without_eviction_the_cap_refuses() {
        let gate = ConnectionGate::new(1, 1);
        let t0 = Instant::now();
        let _a = gate.admit(ip(1), t0).expect("a");
        assert_eq!(
            gate.admit(ip(2), t0 + Duration::from_secs(3600)).err(),
            Some(Limit::ConnectionsTotal)
        );
    }

    #[test]
    fn a_full_address_does_not_evict_others() {
        let gate = ConnectionGate::with_eviction(2, 1, Duration::ZERO);
        let t0 = Instant::now();
        let a = gate.admit(ip(1), t0).expect("a");
        let _b = gate.admit(ip(2), t0).expect("b");
        assert_eq!(gate.admit(ip(1), t0).err(), Some(Limit::ConnectionsPerIp));
        assert!(!was_evicted(&a));
    }

    #[test]
    fn the_per_ip_cap_refuses_only_that_address() {
        let gate = ConnectionGate::new(10, 2);
        let a = gate.admit_now(ip(1)).expect("first");
        let _b = gate.admit_now(ip(1)).expect("second");
        assert_eq!(gate.admit_now(ip(1)).err(), Some(Limit::ConnectionsPerIp));
        let _c = gate.admit_now(ip(2)).expect("other address");
        drop(a);
        assert!(
            gate.admit_now(ip(1)).is_ok(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn the_total_cap_refuses_every_address() {
        let gate = ConnectionGate::new(2, 2);
        let _a = gate.admit_now(ip(1)).expect("a");
        let _b = gate.admit_now(ip(2)).expect("b");
        assert_eq!(gate.admit_now(ip(3)).err(), Some(Limit::ConnectionsTotal));
        assert_eq!(gate.open(), 2);
    }

    #[test]
    fn the_gate_forgets_addresses_without_connections() {
        let gate = ConnectionGate::new(100_000, 1);
        for i in 0..=255 {
            drop(gate.admit_now(ip(i)).expect("admit"));
        }
        assert_eq!(gate.open(), 0);
        let counts = lock(&gate.counts);
        assert!(counts.per_ip.is_empty() && counts.slots.is_empty());
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
