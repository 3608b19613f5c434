//! The `roomcast-ingest` binary's body: flags in, listeners, route and certificate followers and
//! the ops endpoint up, serving until `stop`, then the drain.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{IngestArgs, RoutesSource};
use crate::error::{Error, Result};
use crate::routes::{DEFAULT_RELOAD_INTERVAL, watch_configmap, watch_files};
use crate::server::{Gateway, ListenerKind};
use crate::tls::{TLS_RELOAD_INTERVAL, TlsFiles};

#[derive(Clone)]
struct Ops(Arc<Gateway>);

impl roomcast_runtime::ops::OpsState for Ops {
    fn metrics(&self) -> String {
        self.0.metrics.encode()
    }
    fn readiness(&self) -> Result<(), Cow<'static, str>> {
        self.0.readiness()
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Run the gateway until `stop` resolves, then drain.
pub async fn run(args: IngestArgs, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let source = args.routes_source()?;
    let gw = Gateway::new(args.options())?;
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles::load(cert, key)?),
        _ => None,
    };
    let stopping = gw.stopping();
    let routes_task = match source {
        RoutesSource::File(path) => tokio::spawn(watch_files(
            gw.routes.clone(),
            gw.metrics.clone(),
            args.routing_key_file.clone(),
            Some(path),
            DEFAULT_RELOAD_INTERVAL,
            stopping.clone(),
        )),
        RoutesSource::ConfigMap { namespace, name } => {
            let client = kube::Client::try_default().await?;
            tokio::spawn(watch_files(
                gw.routes.clone(),
                gw.metrics.clone(),
                args.routing_key_file.clone(),
                None,
                DEFAULT_RELOAD_INTERVAL,
                stopping.clone(),
            ));
            tokio::spawn(watch_configmap(
                client,
                namespace,
                name,
                gw.routes.clone(),
                gw.metrics.clone(),
                stopping.clone(),
            ))
        }
    };
    let mut listeners = vec![tokio::spawn(
        gw.clone()
            .serve(bind(args.rtmp_listen).await?, ListenerKind::Rtmp),
    )];
    if let Some(tls) = tls {
        tokio::spawn(
            tls.clone()
                .watch(gw.metrics.clone(), TLS_RELOAD_INTERVAL, stopping.clone()),
        );
        listeners.push(tokio::spawn(
            gw.clone()
                .serve(bind(args.rtmps_listen).await?, ListenerKind::Rtmps(tls)),
        ));
    }
    let ops = bind(args.ops_listen).await?;
    let router = roomcast_runtime::ops::router(Ops(gw.clone()));
    let mut ops_stop = stopping.clone();
    let ops_task = tokio::spawn(async move {
        let _ = axum::serve(ops, router)
            .with_graceful_shutdown(async move {
                let _ = ops_stop.changed().await;
            })
            .await;
    });
    tracing::info!(rtmp = %args.rtmp_listen, rtmps = %args.rtmps_listen, ops = %args.ops_listen, proxy_protocol = args.proxy_protocol, "ingest gateway serving");
    stop.await;
    gw.drain(Duration::from_secs(args.drain_seconds)).await;
    for l in listeners {
        let _ = l.await;
    }
    let _ = routes_task.await;
    let _ = ops_task.await;
    Ok(())
}
