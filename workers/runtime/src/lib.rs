//! roomcast-runtime: the plumbing every roomcast binary shares, so that each concept has one
//! home and every binary behaves the same way at its edges.
//!
//! ```text
//!  main.rs ──► telemetry::LogArgs (--log-format, RUST_LOG) ──► telemetry::init
//!          ──► ops::router(state) ──► /metrics /healthz /readyz (one shape for every worker)
//!          ──► Secret::from_file (mounted Secret files, trimmed, redacted in logs)
//!          ──► listen (connection caps, accept backoff, the HTTP server with header and body limits)
//!          ──► clientip (which address a socket counts as: the peer, or the client a trusted proxy names)
//!          ──► origin (X-Origin-Secret check, no-store on errors: every route behind a CDN)
//!          ──► shutdown_signal (Ctrl-C or SIGTERM)
//!  tests   ──► skip::missing (a missing real component: a notice here, a failure in CI)
//! ```
//!
//! [`RoomIdentity`] (the `namespace/name` of a room) is plain data and lives in
//! `roomcast-crds`, next to the `WorkerConfig` that carries it; it is re-exported here.

pub mod clientip;
pub mod listen;
pub mod ops;
pub mod origin;
pub mod secret;
pub mod skip;
pub mod telemetry;

pub use roomcast_crds::RoomIdentity;
pub use secret::{Secret, SecretError, SecretFile};

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod), whichever
/// comes first. Where SIGTERM cannot be watched, Ctrl-C alone.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
