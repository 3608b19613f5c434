use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use roomcast_operator::{
    config::{OperatorConfig, RunConfig},
    controller, http,
    metrics::Metrics,
    render,
    telemetry::{self, LogFormat},
};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// roomcast operator: reconciles StreamRoom resources into running rooms.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        env = "ROOMCAST_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig or service account.
    Run {
        #[command(flatten)]
        run: RunConfig,
        #[command(flatten)]
        config: OperatorConfig,
    },
    /// Print the objects the operator would apply for the rooms in a file (`-` for stdin).
    Render {
        /// StreamRoom YAML file, one or more documents.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[command(flatten)]
        config: OperatorConfig,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Render { file, config } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let config = config.normalized()?;
            print!("{}", render::render(&text, &config)?);
            Ok(())
        }
        Command::Run { run, config } => {
            telemetry::init(cli.log_format);
            run_controller(run.normalized(), config.normalized()?).await
        }
    }
}

async fn run_controller(run: RunConfig, config: OperatorConfig) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (no kubeconfig and not in a cluster?)")?;
    let metrics = Metrics::default();
    let (ready_tx, ready_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(run.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", run.http_addr))?;
    info!(addr = %run.http_addr, "serving /metrics /healthz /readyz");
    let router = http::router(metrics.clone(), ready_rx);
    let mut http_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });

    tokio::spawn(async move {
        roomcast_runtime::shutdown_signal().await;
        info!("shutting down");
        let _ = shutdown_tx.send(true);
    });

    // With leader election, only the Lease holder reconciles; losing the Lease ends the
    // process so Kubernetes restarts it as a follower (no two leaders, ever).
    let mut leadership = None;
    if run.leader_election {
        let manager = LeaseManagerBuilder::new(client.clone(), &run.lease_name)
            .with_namespace(&config.operator_namespace)
            .with_identity(&run.pod_name)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .context("cannot set up leader election")?;
        let (mut is_leader, task) = manager.watch().await;
        info!(lease = %run.lease_name, identity = %run.pod_name, "waiting for leadership");
        let mut stop = shutdown_rx.clone();
        tokio::select! {
            _ = is_leader.wait_for(|leader| *leader) => info!("became leader"),
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        leadership = Some((is_leader, task));
    }

    let mut stop = shutdown_rx.clone();
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let resync = Duration::from_secs(run.resync_seconds);
    let ctrl = controller::run(
        client,
        config,
        run.watch_namespace,
        resync,
        metrics,
        ready_tx,
        shutdown,
    );

    match leadership {
        Some((mut is_leader, task)) => {
            tokio::select! {
                _ = ctrl => {}
                _ = is_leader.wait_for(|leader| !*leader) => {
                    error!("lost leadership; exiting so a new leader takes over");
                    std::process::exit(1);
                }
            }
            drop(is_leader);
            if let Err(e) = task.await {
                warn!(error = %e, "lease task ended with an error");
            }
        }
        None => ctrl.await,
    }
    server
        .await
        .context("http server task")?
        .context("http server")?;
    Ok(())
}
