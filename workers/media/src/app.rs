//! The `roomcast-media` binary as a function: [`WorkerArgs`] in, the worker serving until a
//! stop signal out. `main.rs` only parses the flags and sets up logging.
//!
//! ```text
//!  --config *.yaml ─► WorkerConfig per room ─► RoomConfig ─► MediaServer (room registry)
//!  recording rooms ─► RoomRecorder (S3 store; MongoDB or embedded catalog) ─► replay routes
//!  POD_NAME set    ─► status_report::report_loop per room (live state into the room status)
//!  HTTP port       = origin::hls + origin::ops + replay routes;  metrics port = origin::ops
//!  stop            ─► listen::run shuts down gracefully ─► recorders flush
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use roomcast_crds::worker_config::{CONFIG_DIR, CONFIG_KEY, RecordingConfig, WorkerConfig};
use roomcast_recorder::{
    DynCatalog, DynStore, Health, RecorderConfig,
    catalog::{embedded::EmbeddedCatalog, lazy::LazyCatalog, mongo::MongoCatalog},
    config::S3Settings,
    store::s3::S3Store,
};
use roomcast_room_status::StatusReporter;
use roomcast_store::mongo::MongoUri;
use tokio::net::TcpListener;

use crate::config::{
    DEFAULT_HTTP_ADDR, DEFAULT_METRICS_ADDR, DEFAULT_RTMP_ADDR, DEFAULT_SPEED_PRESET, MediaOptions,
    RoomConfig, read_worker_config,
};
use crate::error::{Error, Result};
use crate::recording::{RecordedRoom, RoomRecorder};
use crate::server::MediaServer;
use crate::{listen, origin, status_report};

/// The operator mounts an emptyDir here.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/roomcast";
/// How long shutdown waits for the recorder to store and finalise the last session.
pub const RECORDING_FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// The worker's flags (flatten into the binary's parser; each has an env fallback).
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// WorkerConfig YAML (the operator's ConfigMap at `CONFIG_DIR/CONFIG_KEY`); repeat or
    /// separate with commas for several rooms.
    #[arg(
        long = "config",
        env = "ROOMCAST_CONFIG",
        value_delimiter = ',',
        default_values_os_t = [Path::new(CONFIG_DIR).join(CONFIG_KEY)]
    )]
    pub configs: Vec<PathBuf>,
    #[arg(long, env = "ROOMCAST_RTMP_ADDR", default_value = DEFAULT_RTMP_ADDR)]
    pub rtmp_addr: String,
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: String,
    /// `/metrics`, `/healthz`, `/readyz`; empty to serve them on the HTTP port only.
    #[arg(long, env = "ROOMCAST_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: String,
    /// x264 speed preset of the encoded rungs.
    #[arg(long, env = "ROOMCAST_SPEED_PRESET", default_value = DEFAULT_SPEED_PRESET)]
    pub speed_preset: String,
    /// Writable state: the recordings catalog when no MongoDB is configured.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Connection caps, deadlines and sizes of the RTMP and HTTP listeners.
    #[command(flatten)]
    pub limits: crate::limits::ListenerLimits,
}

/// Load the rooms, start their recorders and status reports, serve until `stop` resolves, then
/// shut down gracefully and let the recorders flush.
pub async fn run(args: WorkerArgs, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let workers = args
        .configs
        .iter()
        .map(|p| read_worker_config(p))
        .collect::<Result<Vec<_>>>()?;
    let rooms = workers
        .iter()
        .map(RoomConfig::from_worker_config)
        .collect::<Result<Vec<_>>>()?;
    let server = MediaServer::new(
        rooms,
        MediaOptions {
            speed_preset: args.speed_preset,
            limits: args.limits.clone(),
        },
    )?;

    // Recording: one recorder per recording room, its replay API on the HTTP port.
    let mut recorders = Vec::new();
    let mut health = BTreeMap::new();
    let mut app = origin::hls::router(server.clone()).merge(origin::ops::router(server.clone()));
    // Live first: a recording that cannot start (a bad `recording` section, an unreadable
    // spool) leaves the room live without it, reported unhealthy with the reason; a store or
    // catalog that does not answer yet is retried by the recorder itself.
    for worker in &workers {
        if let Some(rec) = &worker.recording {
            match start_recording(&server, worker, rec, &args.data_dir).await {
                Ok(recorder) => {
                    health.insert(worker.room.clone(), recorder.recorder.health());
                    app = app.merge(recorder.routes.clone());
                    recorders.push(recorder);
                }
                Err(e) => {
                    tracing::error!(room = %worker.room, error = %e, "recording not started; the room is live without it");
                    health.insert(worker.room.clone(), recording_off(&e));
                }
            }
        }
    }

    // In a cluster (POD_NAME from the downward API), report live state into the room status.
    if std::env::var_os("POD_NAME").is_some() {
        // Without a client there is no status report: the worker does not start.
        let client = kube::Client::try_default().await?;
        for room in server.rooms.iter() {
            let id = room.id();
            let reporter = StatusReporter::media(client.clone(), &id.namespace, &id.name);
            tokio::spawn(status_report::report_loop(
                server.clone(),
                room.clone(),
                reporter,
                health.remove(id),
                status_report::DEFAULT_REPORT_INTERVAL,
            ));
        }
    }

    let rtmp = bind(&args.rtmp_addr).await?;
    let http = bind(&args.http_addr).await?;
    let ops = match args.metrics_addr.as_str() {
        "" => None,
        addr => Some((bind(addr).await?, origin::ops::router(server.clone()))),
    };
    tracing::info!(rtmp = %args.rtmp_addr, http = %args.http_addr, rooms = server.rooms.len(), "roomcast-media listening");
    listen::run(server, rtmp, (http, app), ops, stop).await?;
    for recorder in recorders {
        recorder.finish(RECORDING_FLUSH_TIMEOUT).await;
    }
    Ok(())
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr: addr.to_owned(),
            source,
        })
}

/// Record one room: its bucket (from the ConfigMap), its catalog (MongoDB, or the embedded
/// store in the data emptyDir), its replay API on the HTTP port.
async fn start_recording(
    server: &MediaServer,
    worker: &WorkerConfig,
    rec: &RecordingConfig,
    data_dir: &Path,
) -> Result<RoomRecorder> {
    let store: DynStore = Arc::new(S3Store::connect(&S3Settings::from_config(rec)?).await?);
    let catalog: DynCatalog = match &worker.mongodb_uri_file {
        // Opened on first use and retried until MongoDB answers (see `LazyCatalog`).
        Some(file) => {
            let uri = MongoUri::from_file(file)?;
            LazyCatalog::new(move || {
                let uri = uri.clone();
                async move {
                    let db = roomcast_store::mongo::connect(&uri, "roomcast-media").await?;
                    Ok(Arc::new(MongoCatalog::open(&db).await?) as DynCatalog)
                }
            })
            .into()
        }
        None => Arc::new(EmbeddedCatalog::open(data_dir)?),
    };
    let rooms = [RecordedRoom::of(worker)];
    Ok(RoomRecorder::start(
        server,
        &rooms,
        RecorderConfig::from_config(rec)?,
        store,
        catalog,
    )
    .await?)
}

/// The health a room reports when its recording could not start at all: unhealthy, with the
/// reason (the room status's RecordingReady condition carries it).
fn recording_off(e: &Error) -> tokio::sync::watch::Receiver<Health> {
    tokio::sync::watch::channel(Health {
        healthy: false,
        message: format!("recording off: {e}"),
    })
    .1
}
