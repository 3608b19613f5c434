//! `roomcast-media`: the media worker binary. Everything lives in the library.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use roomcast_crds::RoomIdentity;
use roomcast_crds::worker_config::{RecordingConfig, WorkerConfig};
use roomcast_media::config::{DEFAULT_HTTP_ADDR, DEFAULT_METRICS_ADDR, DEFAULT_RTMP_ADDR};
use roomcast_media::server::DEFAULT_SPEED_PRESET;
use roomcast_media::{
    MediaOptions, MediaServer, RoomConfig,
    recording::{RecordedRoom, RoomRecorder},
    status_report,
};
use roomcast_recorder::{
    DynCatalog, DynStore, RecorderConfig,
    catalog::{embedded::EmbeddedCatalog, mongo::MongoCatalog},
    config::S3Settings,
    store::s3::S3Store,
};
use roomcast_room_status::StatusReporter;
use roomcast_store::mongo::MongoUri;

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
    /// Writable state: the recordings catalog when no MongoDB is configured.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// The operator mounts an emptyDir here.
const DEFAULT_DATA_DIR: &str = "/var/lib/roomcast";
/// How long shutdown waits for the recorder to store and finalise the last session.
const RECORDING_FLUSH_TIMEOUT: Duration = Duration::from_secs(20);

/// Record one room: its bucket (from the ConfigMap), its catalog (MongoDB, or the embedded
/// store in the data emptyDir), its replay API on the HTTP port.
async fn start_recording(
    server: &MediaServer,
    worker: &WorkerConfig,
    rec: &RecordingConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<RoomRecorder> {
    let store: DynStore = Arc::new(
        S3Store::connect(&S3Settings::from_config(rec)?)
            .await
            .context("cannot reach the recording bucket")?,
    );
    let catalog: DynCatalog = match &worker.mongodb_uri_file {
        Some(file) => {
            let uri = MongoUri::from_file(file)?;
            let db = roomcast_store::mongo::connect(&uri, "roomcast-media").await?;
            Arc::new(MongoCatalog::open(&db).await?)
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
    let workers = cli
        .configs
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            WorkerConfig::from_yaml(&text).with_context(|| format!("config {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rooms = workers
        .iter()
        .map(RoomConfig::from_worker_config)
        .collect::<Result<Vec<_>, _>>()?;
    let server = MediaServer::new(
        rooms,
        MediaOptions {
            speed_preset: cli.speed_preset,
        },
    )?;

    // Recording: one recorder per recording room, its replay API on the HTTP port.
    let mut recordings = Vec::new();
    let mut health = BTreeMap::new();
    let mut app = roomcast_media::origin::hls::router(server.clone())
        .merge(roomcast_media::origin::ops::router(server.clone()));
    for worker in &workers {
        if let Some(rec) = &worker.recording {
            let recording = start_recording(&server, worker, rec, &cli.data_dir).await?;
            health.insert(worker.room.clone(), recording.recorder.health());
            app = app.merge(recording.routes.clone());
            recordings.push(recording);
        }
    }

    // In a cluster (POD_NAME from the downward API), report live state into the room status.
    if std::env::var_os("POD_NAME").is_some() {
        let client = kube::Client::try_default()
            .await
            .context("cannot build a Kubernetes client for status reports")?;
        for room in server.rooms.iter() {
            let id = RoomIdentity::new(&room.cfg.namespace, &room.cfg.name);
            let reporter = StatusReporter::media(client.clone(), &id.namespace, &id.name);
            tokio::spawn(status_report::report_loop(
                server.clone(),
                room.clone(),
                reporter,
                health.remove(&id),
                status_report::DEFAULT_REPORT_INTERVAL,
            ));
        }
    }
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
    let ops = metrics.map(|l| (l, roomcast_media::origin::ops::router(server.clone())));
    roomcast_media::listen::run(
        server,
        rtmp,
        (http, app),
        ops,
        roomcast_runtime::shutdown_signal(),
    )
    .await?;
    for recording in recordings {
        recording.finish(RECORDING_FLUSH_TIMEOUT).await;
    }
    Ok(())
}
