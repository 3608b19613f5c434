//! The gateway's flags (each with an env fallback), checked at start with errors that name the
//! flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use roomcast_rtmp::limits::RtmpLimits;

use crate::error::{Error, Result};
use crate::server::{DEFAULT_KEY_ATTEMPTS_PER_MINUTE, GatewayOptions};

pub const DEFAULT_RTMP_LISTEN: &str = "0.0.0.0:1935";
/// Not 443: the pod runs as non-root; the Service maps 443 to this port.
pub const DEFAULT_RTMPS_LISTEN: &str = "0.0.0.0:1936";
pub const DEFAULT_OPS_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_ROUTING_KEY_FILE: &str = "/etc/roomcast/routing/key";
/// How long publishers keep going after SIGTERM. Kubernetes' default grace period is 30 s;
/// the chart gives the pod this plus a margin.
pub const DEFAULT_DRAIN_SECONDS: u64 = 30;

/// `roomcast-ingest` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct IngestArgs {
    /// Address of the plain RTMP listener.
    #[arg(long, env = "ROOMCAST_INGEST_RTMP_LISTEN", default_value = DEFAULT_RTMP_LISTEN)]
    pub rtmp_listen: SocketAddr,
    /// Address of the RTMPS listener (on when --tls-cert-file and --tls-key-file are given).
    #[arg(long, env = "ROOMCAST_INGEST_RTMPS_LISTEN", default_value = DEFAULT_RTMPS_LISTEN)]
    pub rtmps_listen: SocketAddr,
    /// PEM certificate chain of the RTMPS listener (re-read when it changes).
    #[arg(long, env = "ROOMCAST_INGEST_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the RTMPS listener (re-read when it changes).
    #[arg(long, env = "ROOMCAST_INGEST_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// File holding the routing key that keys the stream-key hashes (the operator's Secret).
    #[arg(long, env = "ROOMCAST_INGEST_ROUTING_KEY_FILE", default_value = DEFAULT_ROUTING_KEY_FILE)]
    pub routing_key_file: PathBuf,
    /// ConfigMap (in --namespace) whose `routes.json` is the routing table, watched through the
    /// Kubernetes API.
    #[arg(
        long,
        env = "ROOMCAST_INGEST_ROUTES_CONFIGMAP",
        conflicts_with = "routes_file",
        required_unless_present = "routes_file"
    )]
    pub routes_configmap: Option<String>,
    /// File holding the routing table (re-read when it changes), instead of a ConfigMap.
    #[arg(long, env = "ROOMCAST_INGEST_ROUTES_FILE")]
    pub routes_file: Option<PathBuf>,
    /// Namespace of --routes-configmap (the pod's own).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ROOMCAST_INGEST_OPS_LISTEN", default_value = DEFAULT_OPS_LISTEN)]
    pub ops_listen: SocketAddr,
    /// Require a PROXY protocol (v2 or v1) header on every connection of both listeners.
    #[arg(long, env = "ROOMCAST_INGEST_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,
    /// Seconds publishers keep being relayed after SIGTERM.
    #[arg(long, env = "ROOMCAST_INGEST_DRAIN_SECONDS", default_value_t = DEFAULT_DRAIN_SECONDS)]
    pub drain_seconds: u64,
    /// Publish attempts one client address may make a minute (more: refused, `key_guessing`).
    #[arg(long, env = "ROOMCAST_INGEST_KEY_ATTEMPTS_PER_MINUTE", default_value_t = DEFAULT_KEY_ATTEMPTS_PER_MINUTE)]
    pub key_attempts_per_minute: u32,
    /// The RTMP listeners' caps, deadlines and sizes (the same flags as `roomcast-media`).
    #[command(flatten)]
    pub limits: RtmpLimits,
}

/// Where the routing table comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutesSource {
    ConfigMap { namespace: String, name: String },
    File(PathBuf),
}

impl IngestArgs {
    /// The gateway's behaviour.
    pub fn options(&self) -> GatewayOptions {
        GatewayOptions {
            limits: self.limits.clone(),
            proxy_protocol: self.proxy_protocol,
            key_attempts_per_minute: self.key_attempts_per_minute,
            ..GatewayOptions::default()
        }
    }

    pub fn routes_source(&self) -> Result<RoutesSource> {
        match (&self.routes_configmap, &self.routes_file) {
            (Some(name), None) => {
                let namespace = self
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        Error::config(
                            "--namespace",
                            "required with --routes-configmap (or set POD_NAMESPACE)",
                        )
                    })?;
                Ok(RoutesSource::ConfigMap {
                    namespace,
                    name: name.clone(),
                })
            }
            (None, Some(path)) => Ok(RoutesSource::File(path.clone())),
            _ => Err(Error::config(
                "--routes-configmap",
                "give exactly one of --routes-configmap and --routes-file",
            )),
        }
    }
}
