//! The media worker's listener limits: the shared RTMP flags ([`RtmpLimits`], one definition
//! for every RTMP listener, in `roomcast-rtmp`), the keyframe deadline only a muxing worker
//! needs, and the HTTP limits ([`HttpLimits`], shared with every worker that serves HTTP).

use std::time::Duration;

pub use roomcast_rtmp::limits::{
    Admitted, ConnectionGate, Limit, LimitLabels, OffenderLog, Refusal, RtmpLimits, SessionLimits,
};
pub use roomcast_runtime::listen::HttpLimits;

/// A source that sends no keyframe for this long (or for four segment lengths, whichever is
/// longer) is cut: its open segment cannot close, so it would only grow. OBS's "auto" keyframe
/// interval is 250 frames (8.3 s at 30 fps, 10.4 s at 24 fps), which 20 s lets through.
pub const DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS: u64 = 20;
/// The listeners' limits (flags of `roomcast-media` and `roomcast dev`, same names).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// The RTMP listener's caps, deadlines and sizes.
    #[command(flatten)]
    pub rtmp: RtmpLimits,
    /// Seconds a publishing source may go without a keyframe (at least four segment lengths).
    #[arg(long, env = "ROOMCAST_RTMP_KEYFRAME_TIMEOUT_SECONDS", default_value_t = DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS)]
    pub rtmp_keyframe_timeout_seconds: u64,
    /// The HTTP listener's limits.
    #[command(flatten)]
    pub http: HttpLimits,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            rtmp: RtmpLimits::default(),
            rtmp_keyframe_timeout_seconds: DEFAULT_RTMP_KEYFRAME_TIMEOUT_SECONDS,
            http: HttpLimits::default(),
        }
    }
}

impl ListenerLimits {
    /// Refuse zero limits at start, naming the flag.
    pub fn validate(&self) -> crate::Result<()> {
        if self.rtmp_keyframe_timeout_seconds == 0 {
            return Err(crate::Error::config(
                "--rtmp-keyframe-timeout-seconds",
                "must be at least 1",
            ));
        }
        match self.rtmp.problem().or_else(|| self.http.problem()) {
            Some((field, problem)) => Err(crate::Error::config(field, problem)),
            None => Ok(()),
        }
    }

    /// The deadlines and sizes the RTMP core enforces.
    pub fn session(&self) -> SessionLimits {
        self.rtmp.session()
    }

    /// How long a publishing source may go without a keyframe.
    pub fn keyframe_timeout(&self) -> Duration {
        Duration::from_secs(self.rtmp_keyframe_timeout_seconds)
    }
}

/// Count a refusal by listener and reason in the worker's metrics and log it once per offender.
pub(crate) fn refused(
    metrics: &crate::metrics::Metrics,
    log: &OffenderLog,
    listener: &'static str,
    peer: std::net::SocketAddr,
    limit: Limit,
) {
    roomcast_rtmp::limits::refused(
        &metrics.refused_connections,
        log,
        listener,
        peer,
        limit.label(),
        &limit,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        let limits = ListenerLimits {
            rtmp: RtmpLimits {
                rtmp_max_connections_per_ip: 0,
                ..RtmpLimits::default()
            },
            ..ListenerLimits::default()
        };
        let err = limits.validate().expect_err("zero").to_string();
        assert!(err.contains("--rtmp-max-connections-per-ip"), "{err}");
        let limits = ListenerLimits {
            rtmp_keyframe_timeout_seconds: 0,
            ..ListenerLimits::default()
        };
        let err = limits.validate().expect_err("zero").to_string();
        assert!(err.contains("--rtmp-keyframe-timeout-seconds"), "{err}");
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
