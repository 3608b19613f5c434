//! Listener limits: what one network peer may hold of an RTMP listener. [`RtmpLimits`] are the
//! flags (the same names on `roomcast-media`, `roomcast dev` and `roomcast-ingest`);
//! [`SessionLimits`] is what the core enforces per connection; [`Limit`] names the reason a
//! connection was refused or cut, the `reason` label of each binary's refused-connections
//! counter, which [`refused`] feeds. The connection gate and the offender log live in
//! [`roomcast_runtime::listen`].

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use roomcast_runtime::listen::{Admitted, ConnectionGate, OffenderLog, Refusal};

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
/// Largest RTMP message. A keyframe of a 20 Mbit/s 4K stream is 2 to 4 MiB; the protocol
/// allows 16 MiB, which a hostile peer would otherwise make each connection buffer.
pub const DEFAULT_RTMP_MAX_MESSAGE_BYTES: u32 = 8 * 1024 * 1024;

/// The RTMP listener's limits (flags of `roomcast-media`, `roomcast dev` and `roomcast-ingest`,
/// same names).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct RtmpLimits {
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
    /// Largest RTMP message in bytes (also the most one connection buffers).
    #[arg(long, env = "ROOMCAST_RTMP_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_RTMP_MAX_MESSAGE_BYTES)]
    pub rtmp_max_message_bytes: u32,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        RtmpLimits {
            rtmp_max_connections: DEFAULT_RTMP_MAX_CONNECTIONS,
            rtmp_max_connections_per_ip: DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP,
            rtmp_handshake_timeout_seconds: DEFAULT_RTMP_HANDSHAKE_TIMEOUT_SECONDS,
            rtmp_publish_timeout_seconds: DEFAULT_RTMP_PUBLISH_TIMEOUT_SECONDS,
            rtmp_idle_timeout_seconds: DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS,
            rtmp_evict_after_seconds: DEFAULT_RTMP_EVICT_AFTER_SECONDS,
            rtmp_max_message_bytes: DEFAULT_RTMP_MAX_MESSAGE_BYTES,
        }
    }
}

impl RtmpLimits {
    /// The first flag whose value cannot work (zero), with why; checked at start.
    pub fn problem(&self) -> Option<(&'static str, String)> {
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
            ("--rtmp-evict-after-seconds", self.rtmp_evict_after_seconds),
            (
                "--rtmp-max-message-bytes",
                u64::from(self.rtmp_max_message_bytes),
            ),
        ];
        checks
            .iter()
            .find(|(_, v)| *v == 0)
            .map(|(field, _)| (*field, "must be at least 1".to_owned()))
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

    /// The connection caps, with eviction of connections that never publish.
    pub fn gate(&self) -> Arc<ConnectionGate> {
        ConnectionGate::with_eviction(
            self.rtmp_max_connections,
            self.rtmp_max_connections_per_ip,
            Duration::from_secs(self.rtmp_evict_after_seconds),
        )
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
        RtmpLimits::default().session()
    }
}

/// Why a connection was refused or cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Refused or cut by the listener: connection caps, eviction, HTTP header and body limits.
    Listener(Refusal),
    HandshakeTimeout,
    PublishTimeout,
    IdleTimeout,
    MessageTooLarge,
    /// The source sent no keyframe for too long: its open segment could only grow.
    NoKeyframe,
    /// The source's video timestamps fell behind the wall clock by more than the keyframe
    /// limit (frozen, or crawling): its open segment could not close in time.
    TimestampsStalled,
    /// The ingest average stayed above `maxBitrateKbps` (plus tolerance) for too long.
    BitrateExceeded,
    /// The RTMP library panicked on this connection's input.
    LibraryPanic,
}

impl Limit {
    /// Short stable label (`reason` of the refused-connections counters).
    pub fn label(self) -> &'static str {
        match self {
            Limit::Listener(refusal) => refusal.label(),
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::PublishTimeout => "publish_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MessageTooLarge => "message_too_large",
            Limit::NoKeyframe => "no_keyframe",
            Limit::TimestampsStalled => "timestamps_stalled",
            Limit::BitrateExceeded => "bitrate_exceeded",
            Limit::LibraryPanic => "library_panic",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Listener(refusal) => return refusal.fmt(f),
            Limit::HandshakeTimeout => "RTMP handshake not finished in time",
            Limit::PublishTimeout => "no publish in time",
            Limit::IdleTimeout => "no audio or video in time",
            Limit::MessageTooLarge => "RTMP message larger than the limit",
            Limit::NoKeyframe => "no keyframe from the source for too long",
            Limit::TimestampsStalled => "the source's timestamps stopped keeping up with the clock",
            Limit::BitrateExceeded => "ingest bitrate stayed above maxBitrateKbps",
            Limit::LibraryPanic => "the RTMP library panicked on this input",
        })
    }
}

/// Labels of the refused-connections counters: which listener, which reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// Count a refusal by listener and `reason` (a stable label) and log `what` once per offender.
pub fn refused(
    counter: &Family<LimitLabels, Counter>,
    log: &OffenderLog,
    listener: &'static str,
    peer: SocketAddr,
    reason: &'static str,
    what: &dyn Display,
) {
    counter
        .get_or_create(&LimitLabels { listener, reason })
        .inc();
    if log.should_log(peer.ip(), Instant::now()) {
        tracing::warn!(%peer, listener, reason, "connection refused: {what} (logged once a minute per address)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        let limits = RtmpLimits {
            rtmp_max_connections_per_ip: 0,
            ..RtmpLimits::default()
        };
        let (field, _) = limits.problem().expect("zero");
        assert_eq!(field, "--rtmp-max-connections-per-ip");
        assert_eq!(RtmpLimits::default().problem(), None, "defaults are valid");
    }

    #[test]
    fn a_refusal_is_counted_every_time_and_logged_once() {
        let counter = Family::<LimitLabels, Counter>::default();
        let log = OffenderLog::default();
        let peer: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        for _ in 0..3 {
            refused(
                &counter,
                &log,
                "rtmp",
                peer,
                "idle_timeout",
                &Limit::IdleTimeout,
            );
        }
        let labels = LimitLabels {
            listener: "rtmp",
            reason: "idle_timeout",
        };
        assert_eq!(counter.get_or_create(&labels).get(), 3);
        assert!(!log.should_log(peer.ip(), Instant::now()), "already logged");
    }
}
