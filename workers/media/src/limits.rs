//! Listener limits: what one network peer may hold of the worker. [`ListenerLimits`] are the
//! flags (the HTTP ones are [`HttpLimits`], shared with every worker that serves HTTP); the
//! connection gate, the offender log and the HTTP server live in [`roomcast_runtime::listen`];
//! [`Limit`] names the reason, the `reason` label of `roomcast_media_refused_connections_total`.

use std::time::{Duration, Instant};

pub use roomcast_runtime::listen::{Admitted, ConnectionGate, HttpLimits, OffenderLog, Refusal};

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
    /// The HTTP listener's limits.
    #[command(flatten)]
    pub http: HttpLimits,
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
            http: HttpLimits::default(),
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
            ("--rtmp-evict-after-seconds", self.rtmp_evict_after_seconds),
            (
                "--rtmp-keyframe-timeout-seconds",
                self.rtmp_keyframe_timeout_seconds,
            ),
            (
                "--rtmp-max-message-bytes",
                u64::from(self.rtmp_max_message_bytes),
            ),
        ];
        if let Some((field, _)) = checks.iter().find(|(_, v)| *v == 0) {
            return Err(crate::Error::config(*field, "must be at least 1"));
        }
        match self.http.problem() {
            Some((field, problem)) => Err(crate::Error::config(field, problem)),
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
    /// Refused or cut by the listener: connection caps, eviction, HTTP header and body limits.
    Listener(Refusal),
    HandshakeTimeout,
    PublishTimeout,
    IdleTimeout,
    MessageTooLarge,
    /// The source sent no keyframe for too long: its open segment could only grow.
    NoKeyframe,
    /// The ingest average stayed above `maxBitrateKbps` (plus tolerance) for too long.
    BitrateExceeded,
    /// The RTMP library panicked on this connection's input.
    LibraryPanic,
}

impl Limit {
    /// Short stable label (`reason` of `roomcast_media_refused_connections_total`).
    pub fn label(self) -> &'static str {
        match self {
            Limit::Listener(refusal) => refusal.label(),
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::PublishTimeout => "publish_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::MessageTooLarge => "message_too_large",
            Limit::NoKeyframe => "no_keyframe",
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
            Limit::BitrateExceeded => "ingest bitrate stayed above maxBitrateKbps",
            Limit::LibraryPanic => "the RTMP library panicked on this input",
        })
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

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        let limits = ListenerLimits {
            rtmp_max_connections_per_ip: 0,
            ..ListenerLimits::default()
        };
        let err = limits.validate().expect_err("zero").to_string();
        assert!(err.contains("--rtmp-max-connections-per-ip"), "{err}");
        let limits = ListenerLimits {
            http: HttpLimits {
                http_max_header_bytes: 10,
                ..HttpLimits::default()
            },
            ..ListenerLimits::default()
        };
        let err = limits.validate().expect_err("tiny").to_string();
        assert!(err.contains("--http-max-header-bytes"), "{err}");
        ListenerLimits::default()
            .validate()
            .expect("defaults are valid");
    }
}
