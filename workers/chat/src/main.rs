//! `roomcast-chat`: serve the one room named by the worker config, or mint a test token.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, http::StatusCode, routing::get, serve::ListenerExt};
use clap::{Args, Parser, Subcommand};
use prometheus_client::registry::Registry;
use roomcast_chat::{
    ChatMetrics, ChatServer, ServerOptions,
    cluster::{self, StatusSink},
    config::{self, parse_duration},
    presence,
    protocol::Role,
    room,
    token::{self, Claims, SigningKey},
};
use roomcast_crds::worker_config::{CONFIG_DIR, CONFIG_KEY, HTTP_PORT, METRICS_PORT};
use roomcast_room_status::StatusReporter;

const DEFAULT_DATA_DIR: &str = "/var/lib/roomcast";
/// How often the connection count is offered to the status reporter (it sends changes and a
/// heartbeat).
const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the room's live state is read from its status.
const LIVE_STATE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "roomcast-chat",
    version,
    about = "A StreamRoom's socket.io chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the room (the default).
    Serve,
    /// Print a chat token signed with a room's key, for testing.
    MintToken(MintArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Worker config (YAML) written by the operator.
    #[arg(long, env = "ROOMCAST_CONFIG", default_value_t = format!("{CONFIG_DIR}/{CONFIG_KEY}"))]
    config: String,
    /// socket.io, /healthz and /readyz.
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], HTTP_PORT)))]
    http_addr: SocketAddr,
    /// Prometheus /metrics.
    #[arg(long, env = "ROOMCAST_METRICS_ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], METRICS_PORT)))]
    metrics_addr: SocketAddr,
    /// Embedded store directory, used when the config names no MongoDB.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Sockets one client address may hold (0: unlimited).
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_IP", default_value_t = room::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: u32,
    /// Count connections by the last X-Forwarded-For address: on by default, the binary runs
    /// behind the room's Ingress; set false when clients connect directly.
    #[arg(long, env = "ROOMCAST_TRUST_FORWARDED_FOR", default_value_t = true, action = clap::ArgAction::Set)]
    trust_forwarded_for: bool,
    /// Largest websocket message or polling payload, bytes.
    #[arg(long, env = "ROOMCAST_MAX_FRAME_BYTES", default_value_t = room::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: u64,
    /// Heartbeat interval; a client silent for interval + timeout is dropped (idle timeout).
    #[arg(long, env = "ROOMCAST_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    ping_interval: Duration,
    #[arg(long, env = "ROOMCAST_PING_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    ping_timeout: Duration,
    /// Time a client has to join after the transport handshake.
    #[arg(long, env = "ROOMCAST_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// How often viewer counts are recomputed across replicas.
    #[arg(long, env = "ROOMCAST_PRESENCE_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    presence_interval: Duration,
    /// Async runtime: `multi-thread` (work-stealing workers) or `current-thread` (one thread).
    #[arg(long, env = "ROOMCAST_RUNTIME", value_enum, default_value_t = RuntimeFlavor::MultiThread)]
    runtime: RuntimeFlavor,
    /// Runtime worker threads of the multi-thread runtime (0: one per core).
    #[arg(long, env = "ROOMCAST_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    /// JSON logs (level from RUST_LOG).
    #[arg(long, env = "ROOMCAST_LOG_JSON")]
    log_json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeFlavor {
    MultiThread,
    CurrentThread,
}

#[derive(Args)]
struct MintArgs {
    /// File holding the room's chat signing key.
    #[arg(long)]
    key_file: PathBuf,
    /// User id (`sub`).
    #[arg(long)]
    user: String,
    /// Display name.
    #[arg(long)]
    name: String,
    #[arg(long, value_parser = parse_role, default_value = "viewer")]
    role: Role,
    /// Lifetime, e.g. 90s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ttl: Duration,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "viewer" => Ok(Role::Viewer),
        "moderator" => Ok(Role::Moderator),
        "streamer" => Ok(Role::Streamer),
        _ => Err(format!("{s:?}: role must be viewer, moderator or streamer")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::MintToken(args)) => mint(args),
        Some(Command::Serve) | None => {
            let mut runtime = match cli.serve.runtime {
                RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
                RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
            };
            if cli.serve.runtime == RuntimeFlavor::MultiThread && cli.serve.worker_threads > 0 {
                runtime.worker_threads(cli.serve.worker_threads);
            }
            runtime
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(serve(cli.serve))
        }
    }
}

fn mint(args: MintArgs) -> anyhow::Result<()> {
    let key = std::fs::read(&args.key_file)
        .with_context(|| format!("reading {}", args.key_file.display()))?;
    let key = SigningKey::from_file_contents(&key)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let exp = i64::try_from(now.saturating_add(args.ttl).as_secs())?;
    let token = token::mint(
        &key,
        &Claims {
            sub: args.user,
            name: args.name,
            role: args.role,
            exp,
        },
    )?;
    println!("{}", token.expose());
    Ok(())
}

fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in roomcast_chat::SECRET_SAFE_LOG_DIRECTIVES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_json);
    let settings = config::load(&args.config, args.data_dir.clone())?;
    let store = roomcast_chat::open_store(&settings.store).await?;
    let mut registry = Registry::with_prefix("roomcast_chat");
    let metrics = ChatMetrics::register(&mut registry);
    let options = ServerOptions {
        max_connections_per_ip: args.max_connections_per_ip,
        trust_forwarded_for: args.trust_forwarded_for,
        max_frame_bytes: args.max_frame_bytes,
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        connect_timeout: args.connect_timeout,
        presence_interval: args.presence_interval,
        ..ServerOptions::default()
    };
    let (namespace, name) = (settings.room.namespace.clone(), settings.room.name.clone());
    let (chat, handle) = ChatServer::builder(store, settings.adapter)
        .options(options)
        .metrics(metrics)
        .room(settings.room)
        .build()
        .await?;

    // In a cluster: connection count into the room status, live state out of it.
    let status_sink = match std::env::var("POD_NAME") {
        Ok(pod) if !pod.is_empty() => {
            let client = kube::Client::try_default()
                .await
                .context("Kubernetes client for room status reports")?;
            let sink = Arc::new(StatusSink::new(StatusReporter::chat_replica(
                client.clone(),
                &namespace,
                &name,
                &pod,
            )));
            if let Some(presence) = handle.presence(&namespace, &name) {
                tokio::spawn(presence::report_periodically(
                    presence,
                    sink.clone(),
                    STATUS_REPORT_INTERVAL,
                ));
            }
            tokio::spawn(cluster::follow_live_state(
                client,
                handle.clone(),
                namespace.clone(),
                name.clone(),
                LIVE_STATE_INTERVAL,
            ));
            Some(sink)
        }
        _ => None,
    };

    let ready = handle.clone();
    let app = chat.route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let ready = ready.is_ready();
            async move {
                if ready {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
                }
            }
        }),
    );
    let registry = Arc::new(registry);
    let metrics_app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        StatusCode::OK,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(axum::http::header::CONTENT_TYPE, "text/plain")],
                        String::new(),
                    ),
                }
            }
        }),
    );

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("listening on {}", args.http_addr))?;
    let local_addr = listener.local_addr()?;
    // Chat frames are small and latency-bound: without TCP_NODELAY, Nagle's algorithm and the
    // peer's delayed ACK hold broadcasts back by up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("listening on {}", args.metrics_addr))?;
    tracing::info!(
        addr = %local_addr,
        metrics = %metrics_listener.local_addr()?,
        room = %format!("{namespace}/{name}"),
        runtime = ?tokio::runtime::Handle::current().runtime_flavor(),
        "chat listening"
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics_listener, metrics_app).await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });

    let shutdown_handle = handle.clone();
    let shutdown = async move {
        roomcast_runtime::shutdown_signal().await;
        tracing::info!("shutting down: telling clients to reconnect");
        shutdown_handle.shutdown().await;
        if let Some(sink) = status_sink
            && let Err(e) = sink.withdraw().await
        {
            tracing::warn!(error = %e, "withdrawing the status report failed");
        }
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    // Connections that linger after every socket was closed do not hold the process.
    tokio::select! {
        res = server => res.context("serving")?,
        () = async {
            roomcast_runtime::shutdown_signal().await;
            tokio::time::sleep(room::DEFAULT_SHUTDOWN_GRACE * 2).await;
        } => tracing::warn!("shutdown grace elapsed; exiting"),
    }
    tracing::info!("stopped");
    Ok(())
}
