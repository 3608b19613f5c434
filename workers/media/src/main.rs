//! `roomcast-media`: the media worker binary. Everything lives in the library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use roomcast_media::config::{DEFAULT_HTTP_ADDR, DEFAULT_METRICS_ADDR, DEFAULT_RTMP_ADDR};
use roomcast_media::server::DEFAULT_SPEED_PRESET;
use roomcast_media::{MediaServer, RoomConfig, ServerOptions};

/// RTMP ingest -> GStreamer ABR transcode -> HLS origin for one or more rooms.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// WorkerConfig YAML (the operator's ConfigMap at `CONFIG_DIR/CONFIG_KEY`); repeat or
    /// separate with commas for several rooms.
    #[arg(
        long = "config",
        env = "ROOMCAST_CONFIG",
        value_delimiter = ',',
        default_value = "/etc/roomcast/config/room.yaml"
    )]
    configs: Vec<PathBuf>,
    #[arg(long, env = "ROOMCAST_RTMP_ADDR", default_value = DEFAULT_RTMP_ADDR)]
    rtmp_addr: String,
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    http_addr: String,
    /// `/metrics`, `/healthz`, `/readyz`; empty to serve them on the HTTP port only.
    #[arg(long, env = "ROOMCAST_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    metrics_addr: String,
    /// x264 speed preset of the encoded rungs.
    #[arg(long, env = "ROOMCAST_SPEED_PRESET", default_value = DEFAULT_SPEED_PRESET)]
    speed_preset: String,
    /// JSON logs.
    #[arg(long, env = "ROOMCAST_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if cli.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let rooms = cli
        .configs
        .iter()
        .map(|p| RoomConfig::from_file(p).with_context(|| format!("config {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server = MediaServer::new(
        rooms,
        ServerOptions {
            speed_preset: cli.speed_preset,
        },
    )?;
    let rtmp = tokio::net::TcpListener::bind(&cli.rtmp_addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.rtmp_addr))?;
    let http = tokio::net::TcpListener::bind(&cli.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.http_addr))?;
    let metrics = if cli.metrics_addr.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&cli.metrics_addr)
                .await
                .with_context(|| format!("cannot listen on {}", cli.metrics_addr))?,
        )
    };
    tracing::info!(rtmp = %cli.rtmp_addr, http = %cli.http_addr, rooms = server.rooms.len(), "roomcast-media listening");
    server.run(rtmp, http, metrics, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
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
    let _ = ctrl_c.await;
}
