//! The `roomcast-chat` binary as library functions: [`serve`] runs the one room of a
//! `WorkerConfig` (socket.io on the HTTP port, the ops routes on both ports, status reports in
//! a cluster) until SIGTERM; [`mint`] signs a test token. `main.rs` only parses flags.

use std::{
    borrow::Cow,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::registry::Registry;
use roomcast_crds::{
    RoomIdentity,
    worker_config::{CONFIG_DIR, CONFIG_KEY, HTTP_PORT, METRICS_PORT},
};
use roomcast_room_status::StatusReporter;
use roomcast_runtime::{
    clientip::{self, TrustedProxies},
    listen::{self, HttpLimits, HttpServer, Workers},
    ops::{self, OpsState},
};

use crate::{
    cluster::{self, StatusSink},
    config::{self, parse_duration},
    error::{Error, Result},
    metrics::{ChatMetrics, ReasonLabels},
    presence,
    protocol::Role,
    room::{self, ChatOptions},
    server::{ChatHandle, ChatServer},
    token::{self, Claims, SigningKey, Token},
};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/roomcast";
/// How often the connection count is offered to the status reporter (it sends changes and a
/// heartbeat).
const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the room's live state is read from its status.
const LIVE_STATE_INTERVAL: Duration = Duration::from_secs(5);

/// Flags of `roomcast-chat serve` (the default command).
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Worker config (YAML) written by the operator.
    #[arg(long, env = "ROOMCAST_CONFIG", default_value_t = format!("{CONFIG_DIR}/{CONFIG_KEY}"))]
    pub config: String,
    /// socket.io, /healthz, /readyz and /metrics.
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], HTTP_PORT)))]
    pub http_addr: SocketAddr,
    /// Prometheus /metrics (and /healthz, /readyz).
    #[arg(long, env = "ROOMCAST_METRICS_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], METRICS_PORT)))]
    pub metrics_addr: SocketAddr,
    /// Embedded store directory, used when the config names no MongoDB.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Sockets one client address may hold (0: unlimited).
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_IP", default_value_t = room::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: u32,
    /// Networks of the proxies in front of the chat (the Ingress controller), comma-separated
    /// CIDRs or addresses. Only a socket whose peer is inside one is counted under the
    /// right-most untrusted `X-Forwarded-For` address; by default (or empty) nobody's header
    /// is believed.
    #[arg(long, env = "ROOMCAST_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Deprecated (use --trusted-proxies): `true` believes anyone's X-Forwarded-For.
    #[arg(long, env = "ROOMCAST_TRUST_FORWARDED_FOR", action = clap::ArgAction::Set)]
    pub trust_forwarded_for: Option<bool>,
    /// JSON bytes of history a joining socket receives; the newest messages that fit are sent.
    #[arg(long, env = "ROOMCAST_MAX_HISTORY_BYTES", default_value_t = room::DEFAULT_MAX_HISTORY_BYTES)]
    pub max_history_bytes: usize,
    /// Largest websocket message or polling payload, bytes.
    #[arg(long, env = "ROOMCAST_MAX_FRAME_BYTES", default_value_t = room::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: u64,
    /// Heartbeat interval; a client silent for interval + timeout is dropped (idle timeout).
    #[arg(long, env = "ROOMCAST_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    #[arg(long, env = "ROOMCAST_PING_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub ping_timeout: Duration,
    /// Time a client has to join after the transport handshake.
    #[arg(long, env = "ROOMCAST_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// How often viewer counts are recomputed across replicas.
    #[arg(long, env = "ROOMCAST_PRESENCE_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub presence_interval: Duration,
    /// Async runtime: `multi-thread` (work-stealing workers) or `current-thread` (one thread).
    #[arg(long, env = "ROOMCAST_RUNTIME", value_enum, default_value_t = RuntimeFlavor::MultiThread)]
    pub runtime: RuntimeFlavor,
    /// Runtime worker threads of the multi-thread runtime (0: one per core).
    #[arg(long, env = "ROOMCAST_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,
    /// The HTTP listener's connection caps and request limits (the per-IP cap does not apply
    /// to `--trusted-proxies`, whose clients are counted per request instead).
    #[command(flatten)]
    pub http_limits: HttpLimits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeFlavor {
    MultiThread,
    CurrentThread,
}

/// Flags of `roomcast-chat mint-token`.
#[derive(clap::Args, Debug, Clone)]
pub struct MintArgs {
    /// File holding the room's chat signing key.
    #[arg(long)]
    pub key_file: PathBuf,
    /// User id (`sub`).
    #[arg(long)]
    pub user: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// viewer, moderator or streamer.
    #[arg(long, default_value = "viewer")]
    pub role: Role,
    /// Lifetime, e.g. 90s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
}

/// A token signed with the key in `args.key_file`, valid for `args.ttl` from now.
pub fn mint(args: &MintArgs) -> Result<Token> {
    let key = SigningKey::from_file(&args.key_file)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let exp = i64::try_from(now.saturating_add(args.ttl).as_secs()).unwrap_or(i64::MAX);
    let claims = Claims {
        sub: args.user.clone(),
        name: args.name.clone(),
        role: args.role,
        exp,
    };
    Ok(token::mint(&key, &claims)?)
}

/// Whose `X-Forwarded-For` to believe: `--trusted-proxies`, or everyone's under the
/// deprecated `--trust-forwarded-for=true` (with a warning); not both.
pub fn trusted_proxies(args: &ServeArgs) -> Result<TrustedProxies> {
    let networks = args
        .trusted_proxies
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(clientip::parse_network)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|message| Error::Config {
            field: "trusted-proxies",
            message,
        })?;
    match args.trust_forwarded_for {
        Some(_) if !networks.is_empty() => Err(Error::Config {
            field: "trust-forwarded-for",
            message: "deprecated; remove it when --trusted-proxies is set".into(),
        }),
        Some(true) => {
            tracing::warn!(
                "--trust-forwarded-for / ROOMCAST_TRUST_FORWARDED_FOR is deprecated and will be \
                 removed: it believes anyone's X-Forwarded-For; set --trusted-proxies to the \
                 Ingress controller's networks"
            );
            Ok(TrustedProxies::everyone())
        }
        Some(false) => {
            tracing::warn!(
                "--trust-forwarded-for / ROOMCAST_TRUST_FORWARDED_FOR is deprecated; false is \
                 the default, remove it"
            );
            Ok(TrustedProxies::default())
        }
        None => Ok(TrustedProxies::new(networks)),
    }
}

/// The runtime `args` ask for.
pub fn runtime(args: &ServeArgs) -> Result<tokio::runtime::Runtime> {
    let mut builder = match args.runtime {
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    if args.runtime == RuntimeFlavor::MultiThread && args.worker_threads > 0 {
        builder.worker_threads(args.worker_threads);
    }
    builder.enable_all().build().map_err(Error::Runtime)
}

/// What the ops routes report: ready until shutdown begins, metrics from the registry.
#[derive(Clone)]
pub struct ChatOps {
    pub chat: ChatHandle,
    pub registry: Arc<Registry>,
}

impl OpsState for ChatOps {
    fn metrics(&self) -> String {
        ops::encode(&self.registry)
    }

    fn readiness(&self) -> Result<(), Cow<'static, str>> {
        if self.chat.is_ready() {
            Ok(())
        } else {
            Err("shutting down".into())
        }
    }
}

/// Serve the room of the worker config at `args.config` until SIGTERM or Ctrl-C, then shut
/// down gracefully (clients are told to reconnect to another replica).
pub async fn serve(args: ServeArgs) -> Result<()> {
    let trusted_proxies = trusted_proxies(&args)?;
    if let Some((flag, problem)) = args.http_limits.problem() {
        return Err(Error::Config {
            field: flag,
            message: problem,
        });
    }
    let settings = config::load(&args.config, args.data_dir.clone())?;
    let store = config::open_store(&settings.store).await?;
    let mut registry = Registry::with_prefix("roomcast_chat");
    let metrics = ChatMetrics::register(&mut registry);
    let listener_refusals = refusal_counter(&metrics, &settings.room.id);
    let gate = args.http_limits.gate_exempting(trusted_proxies.clone());
    let options = ChatOptions {
        max_connections_per_ip: args.max_connections_per_ip,
        trusted_proxies,
        max_history_bytes: args.max_history_bytes,
        max_frame_bytes: args.max_frame_bytes,
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        connect_timeout: args.connect_timeout,
        presence_interval: args.presence_interval,
        ..ChatOptions::default()
    };
    let id = settings.room.id.clone();
    let (chat, handle) = ChatServer::builder(store, settings.adapter)
        .options(options)
        .metrics(metrics)
        .room(settings.room)
        .build()
        .await?;
    let status_sink = report_status(&handle, &id).await?;

    let ops = ops::router(ChatOps {
        chat: handle.clone(),
        registry: Arc::new(registry),
    });
    let app = chat.merge(ops.clone());
    let listener = bind(args.http_addr).await?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| listen_error(args.http_addr, source))?;
    let metrics_listener = bind(args.metrics_addr).await?;
    tracing::info!(
        addr = %local_addr,
        metrics = %metrics_listener
            .local_addr()
            .map_err(|source| listen_error(args.metrics_addr, source))?,
        room = %id,
        runtime = ?tokio::runtime::Handle::current().runtime_flavor(),
        "chat listening"
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics_listener, ops).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });

    let shutdown_handle = handle.clone();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        roomcast_runtime::shutdown_signal().await;
        tracing::info!("shutting down: telling clients to reconnect");
        shutdown_handle.shutdown().await;
        if let Some(sink) = status_sink
            && let Err(e) = sink.withdraw().await
        {
            tracing::warn!(error = %e, "withdrawing the status report failed");
        }
        let _ = stop_tx.send(true);
    });
    // socketioxide's tasks and the Redis adapter live on this runtime: serve here, not on
    // per-core threads. TCP_NODELAY is set on every socket (chat frames are latency-bound).
    let server = listen::serve_http(
        listener,
        app,
        HttpServer {
            name: "http",
            gate,
            limits: args.http_limits.clone(),
            on_refused: listener_refusals,
            workers: Workers::Current,
        },
        stop,
    );
    // Connections that linger after every socket was closed do not hold the process.
    tokio::select! {
        res = server => res.map_err(Error::Serve)?,
        () = async {
            roomcast_runtime::shutdown_signal().await;
            tokio::time::sleep(room::DEFAULT_SHUTDOWN_GRACE * 2).await;
        } => tracing::warn!("shutdown grace elapsed; exiting"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Listener refusals (connection caps, header and body limits) count in `connects_refused`
/// beside the socket.io ones, and are logged once a minute per address.
fn refusal_counter(metrics: &ChatMetrics, id: &RoomIdentity) -> listen::OnRefused {
    let family = metrics.connects_refused.clone();
    let offenders = listen::OffenderLog::default();
    let (namespace, room) = (id.namespace.clone(), id.name.clone());
    Arc::new(move |peer: SocketAddr, refusal: listen::Refusal| {
        family
            .get_or_create(&ReasonLabels {
                namespace: namespace.clone(),
                room: room.clone(),
                reason: refusal.label().to_owned(),
            })
            .inc();
        if offenders.should_log(peer.ip(), std::time::Instant::now()) {
            tracing::warn!(%peer, reason = refusal.label(), "connection refused: {refusal} (logged once a minute per address)");
        }
    })
}

/// In a cluster (`POD_NAME` set): this replica's connection count goes into the room status,
/// the room's live state comes out of it. The sink is withdrawn on shutdown.
async fn report_status(handle: &ChatHandle, id: &RoomIdentity) -> Result<Option<Arc<StatusSink>>> {
    let pod = match std::env::var("POD_NAME") {
        Ok(pod) if !pod.is_empty() => pod,
        _ => return Ok(None),
    };
    let client = kube::Client::try_default().await?;
    let sink = Arc::new(StatusSink::new(StatusReporter::chat_replica(
        client.clone(),
        &id.namespace,
        &id.name,
        &pod,
    )));
    if let Some(presence) = handle.presence(&id.namespace, &id.name) {
        tokio::spawn(presence::report_periodically(
            presence,
            sink.clone(),
            STATUS_REPORT_INTERVAL,
        ));
    }
    tokio::spawn(cluster::follow_live_state(
        client,
        handle.clone(),
        id.clone(),
        LIVE_STATE_INTERVAL,
    ));
    Ok(Some(sink))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| listen_error(addr, source))
}

fn listen_error(addr: SocketAddr, source: std::io::Error) -> Error {
    Error::Listen {
        addr: addr.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use roomcast_crds::ChatSpec;

    use super::*;
    use crate::{room::RoomChat, server::AdapterConfig, store::embedded::EmbeddedChatStore};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> Result<ServeArgs, String> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("roomcast-chat").chain(flags.iter().copied()))
            .map(|c| c.serve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn trusted_proxies_default_to_nobody_and_parse_cidrs_and_addresses() {
        let none = trusted_proxies(&args(&[]).expect("no flags")).expect("ok");
        assert!(none.is_empty(), "nobody's X-Forwarded-For by default");
        for empty in ["", " ", ",", " , "] {
            let none = trusted_proxies(&args(&["--trusted-proxies", empty]).expect("flags"))
                .expect("empty is nobody");
            assert!(none.is_empty(), "{empty:?}");
        }
        let some = trusted_proxies(
            &args(&["--trusted-proxies", "10.0.0.0/8, fd00::/8,192.168.1.7"]).expect("flags"),
        )
        .expect("ok");
        assert_eq!(some.to_string(), "10.0.0.0/8,fd00::/8,192.168.1.7/32");
        for bad in [
            "10.0.0.0/33",
            "ingress",
            "10.0.0.0/8;rm",
            "*",
            "10.0.0.0/8,,bogus",
        ] {
            let err = trusted_proxies(&args(&["--trusted-proxies", bad]).expect("flags"))
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("trusted-proxies") && err.contains("CIDR"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_deprecated_trust_forwarded_for_flag_still_works_but_not_with_trusted_proxies() {
        let old = trusted_proxies(&args(&["--trust-forwarded-for", "true"]).expect("flags"))
            .expect("still accepted");
        assert_eq!(old, TrustedProxies::everyone());
        let off = trusted_proxies(&args(&["--trust-forwarded-for", "false"]).expect("flags"))
            .expect("still accepted");
        assert!(off.is_empty());
        let both = args(&[
            "--trust-forwarded-for",
            "true",
            "--trusted-proxies",
            "10.0.0.0/8",
        ])
        .expect("flags");
        let err = trusted_proxies(&both).expect_err("both").to_string();
        assert!(err.contains("trust-forwarded-for"), "{err}");
        assert!(args(&["--trust-forwarded-for", "yes"]).is_err());
    }

    #[test]
    fn the_history_cap_defaults_to_64_kib() {
        assert_eq!(args(&[]).expect("defaults").max_history_bytes, 64 * 1024);
        assert!(args(&["--max-history-bytes", "-1"]).is_err());
    }

    #[tokio::test]
    async fn ops_say_ready_until_shutdown_and_serve_the_chat_metrics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedChatStore::open(dir.path()).expect("store"));
        let mut registry = Registry::with_prefix("roomcast_chat");
        let metrics = ChatMetrics::register(&mut registry);
        let room = RoomChat {
            id: RoomIdentity::new("shows", "lobby"),
            spec: ChatSpec::default(),
            signing_key: SigningKey::new(roomcast_runtime::Secret::new("0123456789abcdef0123"))
                .expect("key"),
        };
        let (_router, chat) = ChatServer::builder(store, AdapterConfig::Memory)
            .metrics(metrics.clone())
            .room(room)
            .build()
            .await
            .expect("build");
        let ops = ChatOps {
            chat: chat.clone(),
            registry: Arc::new(registry),
        };
        metrics
            .messages
            .get_or_create(&crate::metrics::RoomLabels {
                namespace: "shows".into(),
                room: "lobby".into(),
            })
            .inc();
        assert!(
            ops.metrics()
                .contains(r#"roomcast_chat_messages_total{namespace="shows",room="lobby"} 1"#),
            "{}",
            ops.metrics()
        );
        assert_eq!(ops.readiness(), Ok(()));
        chat.shutdown().await;
        assert!(ops.readiness().is_err(), "not ready once shutdown began");
    }
}
