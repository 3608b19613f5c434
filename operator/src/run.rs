//! `roomcast-operator run`: the process around the controller. Serves the ops routes,
//! waits for the Lease when leader election is on, runs the controller until SIGTERM, and
//! exits when the Lease is lost.

use kube::Client;
use kube_lease_manager::{DurationSeconds, LeaseManagerBuilder};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::{
    Error, Result,
    config::{OperatorConfig, RunConfig},
    controller,
    metrics::Metrics,
    ops,
};

/// How long a Lease holds without renewal; a new leader takes over at most this long after
/// the old one died.
pub const LEASE_DURATION_SECONDS: DurationSeconds = 15;
/// How long before expiry the holder renews.
pub const LEASE_GRACE_SECONDS: DurationSeconds = 5;

/// Run the controller against the cluster of the current kubeconfig or service account until
/// Ctrl-C or SIGTERM. `run` and `config` are expected normalized.
pub async fn run(run: RunConfig, config: OperatorConfig) -> Result<()> {
    let client = Client::try_default().await.map_err(Error::NoClient)?;
    let metrics = Metrics::default();
    let (synced_tx, synced) = watch::channel(false);
    let (leading_tx, leading) = watch::channel(!run.leader_election);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stopped = move || {
        let mut stop = shutdown_rx.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    };

    let listener = tokio::net::TcpListener::bind(run.http_addr)
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot listen on {}", run.http_addr),
            source,
        })?;
    info!(addr = %run.http_addr, "serving /metrics /healthz /readyz");
    let router = roomcast_runtime::ops::router(ops::Ops {
        metrics: metrics.clone(),
        synced,
        leading,
    });
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped())
            .into_future(),
    );

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
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .build()
            .await?;
        let (mut is_leader, task) = manager.watch().await;
        info!(lease = %run.lease_name, identity = %run.pod_name, "waiting for leadership");
        tokio::select! {
            _ = is_leader.wait_for(|leader| *leader) => info!("became leader"),
            _ = stopped() => return Ok(()),
        }
        leading_tx.send_replace(true);
        leadership = Some((is_leader, task));
    }

    let ctrl = controller::run(client, config, &run, metrics, synced_tx, stopped());

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
        .map_err(|e| Error::Io {
            what: "http server task".to_owned(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| Error::Io {
            what: "http server".to_owned(),
            source,
        })
}
