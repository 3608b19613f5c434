//! `roomcast dev`: every room of a StreamRoom file served from this machine: media, chat,
//! recordings and the watch page on one HTTP port, publishers on one RTMP port. The rooms and
//! their keys come from [`crate::rooms`]; the watch page and its API from [`crate::web`].

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use roomcast_chat::{AdapterConfig, ChatHandle, ChatServer, RedisUrl, RoomChat};
use roomcast_crds::worker_config::RTMP_PORT;
use roomcast_ingest::tls::{SelfSigned, TlsFiles, ensure_self_signed};
use roomcast_ingest::{Gateway, GatewayOptions, ListenerKind};
use roomcast_media::{
    MediaOptions, MediaServer, RoomConfig,
    recording::{RecordedRoom, RoomRecorder},
};
use roomcast_recorder::{
    DynCatalog, DynStore, RecorderConfig,
    catalog::{embedded::EmbeddedCatalog, mongo::MongoCatalog},
    config::S3Settings,
    store::{local::LocalStore, s3::S3Store},
};
use roomcast_store::mongo::MongoUri;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::{
    Error, Result,
    rooms::{DEFAULT_ROOM, DevRoom, DevRooms, DevS3},
    web,
};

pub const DEFAULT_DATA_DIR: &str = "./roomcast-data";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_RTMP_ADDR: &str = "127.0.0.1:1935";
/// The ingest gateway's RTMPS port (1936, as in the cluster: 443 needs root).
pub const DEFAULT_RTMPS_ADDR: &str = "127.0.0.1:1936";

/// Settings of a `roomcast dev` run: the subcommand's flags (each with an env fallback).
#[derive(clap::Args, Clone, Debug)]
pub struct DevOptions {
    /// StreamRoom YAML (one or more documents). Without it, one room `lobby`.
    #[arg(short = 'f', long = "filename", env = "ROOMCAST_ROOMS")]
    pub rooms_file: Option<PathBuf>,
    /// Keys, chat history and recordings.
    #[arg(long, env = "ROOMCAST_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// HTTP address of the watch page, HLS and chat.
    #[arg(long, env = "ROOMCAST_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// RTMP address streamers publish to.
    #[arg(long, env = "ROOMCAST_RTMP_ADDR", default_value = DEFAULT_RTMP_ADDR)]
    pub rtmp_addr: SocketAddr,
    /// RTMPS address streamers publish to (the ingest gateway, in-process, with a self-signed
    /// certificate kept in the data directory).
    #[arg(long, env = "ROOMCAST_RTMPS_ADDR", default_value = DEFAULT_RTMPS_ADDR)]
    pub rtmps_addr: SocketAddr,
    /// MongoDB URI for chat history (and the recordings catalog) instead of the embedded store.
    #[arg(long, env = "ROOMCAST_MONGODB_URI")]
    pub mongodb_uri: Option<String>,
    /// Redis URL for the chat adapter (only useful when several processes share rooms).
    #[arg(long, env = "ROOMCAST_REDIS_URL")]
    pub redis_url: Option<String>,
    /// x264 speed preset of encoded renditions (slower: better quality, more CPU).
    #[arg(long, env = "ROOMCAST_SPEED_PRESET", default_value = roomcast_media::config::DEFAULT_SPEED_PRESET)]
    pub speed_preset: String,
    /// Do not record sessions (no past broadcasts).
    #[arg(long, env = "ROOMCAST_NO_RECORDING")]
    pub no_recording: bool,
    #[command(flatten)]
    pub s3: DevS3,
    /// The media worker's listener limits (the same flags as `roomcast-media`).
    #[command(flatten)]
    pub limits: roomcast_media::limits::ListenerLimits,
}

impl DevOptions {
    /// The StreamRoom YAML and what to call it in errors.
    fn rooms_text(&self) -> Result<(String, String)> {
        match &self.rooms_file {
            Some(path) => Ok((
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            )),
            None => Ok(("the default room".to_owned(), DEFAULT_ROOM.to_owned())),
        }
    }
}

/// How long Ctrl-C waits for recordings to be finalised.
const RECORDING_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a person needs to publish to and watch a room.
pub fn room_banner(
    room: &DevRoom,
    rtmp: SocketAddr,
    rtmps: SocketAddr,
    http: SocketAddr,
) -> String {
    let rtmp_host = if rtmp.port() == RTMP_PORT {
        rtmp.ip().to_string()
    } else {
        rtmp.to_string()
    };
    let base = format!("http://{http}{}", room.id().path_prefix());
    let rtmp_url = format!("rtmp://{rtmp_host}/live");
    format!(
        "room {id}\n  OBS     server {rtmp_url}   stream key {key}\n  RTMPS   server rtmps://{rtmps}/live   (same key; self-signed certificate, see below)\n  ffmpeg  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset veryfast -tune zerolatency -g 60 -pix_fmt yuv420p -c:a aac -f flv {rtmp_url}/{key}\n  watch   {base}/\n  HLS     {base}/hls/index.m3u8\n",
        id = room.id(),
        key = room.stream_key.expose(),
    )
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listen = |source| Error::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    Ok((listener, bound))
}

/// `--s3-prefix` follows the rule rooms get from the CRD (`roomcast_crds::is_valid_s3_prefix`):
/// empty, or segments each ending in `/`, no leading `/`, no `.` or `..` segment.
fn check_s3_prefix(s3: &DevS3) -> Result<()> {
    if roomcast_crds::is_valid_s3_prefix(&s3.prefix) {
        return Ok(());
    }
    Err(roomcast_recorder::Error::Config {
        field: "--s3-prefix",
        message: format!("{}, got {:?}", roomcast_crds::S3_PREFIX_RULE, s3.prefix),
    }
    .into())
}

/// Bind, start everything, print the banners, serve until `stop` resolves, shut down cleanly.
pub async fn run(options: DevOptions, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    check_s3_prefix(&options.s3)?;
    let (origin, text) = options.rooms_text()?;
    let rooms = DevRooms::load(
        &text,
        &origin,
        &options.data_dir,
        !options.no_recording,
        &options.s3,
    )?;

    // Media: every room on one RTMP listener, told apart by stream key.
    let media_rooms = rooms
        .iter()
        .map(|r| RoomConfig::from_worker_config(&r.worker))
        .collect::<Result<Vec<_>, _>>()?;
    let media = MediaServer::new(
        media_rooms,
        MediaOptions {
            speed_preset: options.speed_preset.clone(),
            limits: options.limits.clone(),
        },
    )?;

    // Recording: one recorder for every recording room, local store and embedded catalog.
    let recorder = start_recording(&rooms, &options, &media).await?;
    // Chat: one socket.io server per room, on the same HTTP port.
    let (chat_router, chat) = start_chat(&rooms, &options).await?;

    let (rtmp, rtmp_addr) = bind(options.rtmp_addr).await?;
    let (http, http_addr) = bind(options.http_addr).await?;
    let (rtmps, rtmps_addr) = bind(options.rtmps_addr).await?;
    let (gateway, certificate) = start_gateway(&rooms, &options, rtmp_addr)?;

    let state = Arc::new(web::DevState {
        rooms,
        media: media.clone(),
        chat: chat.clone(),
    });
    let mut app = web::router(state.clone())
        .merge(chat_router)
        .merge(roomcast_media::origin::hls::router(media.clone()))
        .merge(roomcast_media::origin::ops::router(media.clone()));
    if let Some(recorder) = &recorder {
        app = app.merge(recorder.routes.clone());
    }

    println!(
        "roomcast dev: {} room(s), data in {}\n",
        state.rooms.len(),
        options.data_dir.display()
    );
    for room in state.rooms.iter() {
        println!("{}", room_banner(room, rtmp_addr, rtmps_addr, http_addr));
    }
    println!(
        "rtmps   certificate {} (self-signed), SHA-256 {}\n        ffmpeg publishes to it as is; OBS needs it trusted (or pinned) first",
        certificate.cert.display(),
        certificate.fingerprint
    );
    println!(
        "rooms   http://{http_addr}/\nPress Ctrl-C to stop (live sessions are ended cleanly)."
    );

    let live_sync = tokio::spawn(web::sync_live_state(state.clone()));
    let rtmp_task = tokio::spawn(roomcast_media::listen::serve_rtmp(media.clone(), rtmp));
    let tls = TlsFiles::load(&certificate.cert, &certificate.key)?;
    let rtmps_task = tokio::spawn(gateway.clone().serve(rtmps, ListenerKind::Rtmps(tls)));
    // The media worker's HTTP listener, with its connection caps and header and body limits,
    // on this runtime: chat's socketioxide tasks and WebSocket upgrades live here.
    let http_task = tokio::spawn(roomcast_media::listen::serve_http(
        media.clone(),
        http,
        app,
        roomcast_media::listen::Workers::Current,
    ));

    stop.await;
    info!("stopping: closing live sessions");
    // The relays first, so that media sees its publishers leave before it shuts down.
    gateway.drain(std::time::Duration::ZERO).await;
    let _ = rtmps_task.await;
    media
        .shutdown(roomcast_media::transcode::pipeline::FINISH_TIMEOUT)
        .await;
    if let Some(recorder) = recorder {
        recorder.finish(RECORDING_FLUSH_TIMEOUT).await;
    }
    // Chat first: its open WebSockets would keep the HTTP server's graceful shutdown waiting.
    chat.shutdown().await;
    live_sync.abort();
    if let Err(e) = rtmp_task.await {
        warn!(error = %e, "rtmp task");
    }
    if let Ok(Err(e)) = http_task.await {
        warn!(error = %e, "http server");
    }
    Ok(())
}

/// The ingest gateway in-process: RTMPS with the data directory's self-signed certificate
/// (made on the first run), routing every room's key to this process's own RTMP listener.
fn start_gateway(
    rooms: &DevRooms,
    options: &DevOptions,
    rtmp: SocketAddr,
) -> Result<(Arc<Gateway>, SelfSigned)> {
    let certificate = ensure_self_signed(&options.data_dir.join("tls"))?;
    let gateway = Gateway::new(GatewayOptions {
        limits: options.limits.rtmp.clone(),
        ..GatewayOptions::default()
    })?;
    // A wildcard listen address is no address to connect to; the relay stays on this host.
    let backend = if rtmp.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], rtmp.port()))
    } else {
        rtmp
    };
    gateway.routes.set_known(rooms.iter().map(|room| {
        (
            room.stream_key.expose(),
            room.id().to_string(),
            backend.to_string(),
        )
    }))?;
    Ok((gateway, certificate))
}

/// The chat of every room that has one, with the signing keys the rooms hold; history in
/// `--mongodb-uri` or the embedded store.
async fn start_chat(rooms: &DevRooms, options: &DevOptions) -> Result<(axum::Router, ChatHandle)> {
    let store_config = match &options.mongodb_uri {
        Some(uri) => roomcast_chat::config::StoreConfig::Mongo(MongoUri::new(uri.clone())),
        None => roomcast_chat::config::StoreConfig::Embedded(options.data_dir.join("chat")),
    };
    let store = roomcast_chat::open_store(&store_config).await?;
    let adapter = match &options.redis_url {
        Some(url) => AdapterConfig::Redis(RedisUrl::new(url.clone())),
        None => AdapterConfig::Memory,
    };
    let mut chat = ChatServer::builder(store, adapter);
    for room in rooms.iter() {
        if let (Some(spec), Some(signing_key)) = (&room.worker.chat, &room.chat_key) {
            chat = chat.room(RoomChat {
                id: room.id().clone(),
                spec: spec.spec.clone(),
                signing_key: signing_key.clone(),
            });
        }
    }
    Ok(chat.build().await?)
}

/// Record every recording room: into the data directory or the `--s3-*` bucket, the catalog
/// embedded or in `--mongodb-uri`.
async fn start_recording(
    rooms: &DevRooms,
    options: &DevOptions,
    media: &MediaServer,
) -> Result<Option<RoomRecorder>> {
    let recorded: Vec<&DevRoom> = rooms
        .iter()
        .filter(|r| r.worker.recording.is_some())
        .collect();
    let Some(first) = recorded.first().and_then(|r| r.worker.recording.as_ref()) else {
        return Ok(None);
    };
    let store: DynStore = if options.s3.bucket.is_some() {
        Arc::new(S3Store::connect(&S3Settings::from_config(first)?).await?)
    } else {
        Arc::new(LocalStore::new(options.data_dir.join("recordings"))?)
    };
    let catalog: DynCatalog = match &options.mongodb_uri {
        Some(uri) => {
            let db =
                roomcast_store::mongo::connect(&MongoUri::new(uri.clone()), "roomcast-dev").await?;
            Arc::new(MongoCatalog::open(&db).await?)
        }
        None => Arc::new(EmbeddedCatalog::open(&options.data_dir)?),
    };
    let config = RecorderConfig {
        // One recorder serves every room here: it records all renditions of each.
        renditions: Vec::new(),
        ..RecorderConfig::from_config(first)?
    };
    let recorded: Vec<RecordedRoom> = recorded
        .iter()
        .map(|r| RecordedRoom::of(&r.worker))
        .collect();
    Ok(Some(
        RoomRecorder::start(media, &recorded, config, store, catalog).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_has_the_obs_settings_the_ffmpeg_command_and_the_urls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms = DevRooms::load(DEFAULT_ROOM, "default", dir.path(), true, &DevS3::default())
            .expect("prepared");
        let room = rooms.iter().next().expect("lobby");
        let banner = room_banner(
            room,
            "127.0.0.1:1935".parse().expect("addr"),
            "127.0.0.1:1936".parse().expect("addr"),
            "127.0.0.1:8080".parse().expect("addr"),
        );
        let key = room.stream_key.expose();
        assert!(banner.starts_with("room default/lobby\n"), "{banner}");
        assert!(
            banner.contains(&format!("server rtmp://127.0.0.1/live   stream key {key}")),
            "{banner}"
        );
        assert!(
            banner.contains("RTMPS   server rtmps://127.0.0.1:1936/live "),
            "{banner}"
        );
        assert!(
            banner.contains(&format!("-f flv rtmp://127.0.0.1/live/{key}")),
            "{banner}"
        );
        assert!(
            banner.contains("watch   http://127.0.0.1:8080/default/lobby/"),
            "{banner}"
        );
        assert!(
            banner.contains("HLS     http://127.0.0.1:8080/default/lobby/hls/index.m3u8"),
            "{banner}"
        );
    }

    #[test]
    fn dev_takes_its_flags_and_the_s3_ones_need_a_bucket() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            dev: DevOptions,
        }
        let cli = Cli::try_parse_from([
            "dev",
            "-f",
            "rooms.yaml",
            "--no-recording",
            "--s3-bucket",
            "shows",
            "--s3-prefix",
            "rooms/",
        ])
        .expect("parse");
        assert_eq!(cli.dev.rooms_file, Some(PathBuf::from("rooms.yaml")));
        assert!(cli.dev.no_recording);
        assert_eq!(cli.dev.s3.bucket.as_deref(), Some("shows"));
        assert_eq!(cli.dev.s3.prefix, "rooms/");
        assert_eq!(cli.dev.http_addr, DEFAULT_HTTP_ADDR.parse().expect("addr"));
        assert!(
            Cli::try_parse_from(["dev", "--s3-prefix", "rooms/"]).is_err(),
            "--s3-prefix without --s3-bucket"
        );
    }

    #[tokio::test]
    async fn dev_refuses_an_s3_prefix_the_crd_would_refuse_naming_the_flag() {
        for prefix in [
            "rooms",
            "/rooms/",
            "rooms//",
            "../rooms/",
            "rooms/../",
            "./",
            "a\\b/",
            "rooms/x",
            " rooms/",
        ] {
            let s3 = DevS3 {
                bucket: Some("shows".into()),
                prefix: prefix.into(),
                ..DevS3::default()
            };
            let err = check_s3_prefix(&s3).expect_err(prefix).to_string();
            assert!(err.contains("--s3-prefix"), "{prefix:?}: {err}");
            assert!(err.contains(&format!("{prefix:?}")), "{prefix:?}: {err}");
            // `run` refuses it before binding or creating anything.
            let dir = tempfile::tempdir().expect("tempdir");
            let options = DevOptions {
                rooms_file: None,
                data_dir: dir.path().join("data"),
                http_addr: "127.0.0.1:0".parse().expect("addr"),
                rtmp_addr: "127.0.0.1:0".parse().expect("addr"),
                rtmps_addr: "127.0.0.1:0".parse().expect("addr"),
                mongodb_uri: None,
                redis_url: None,
                speed_preset: "ultrafast".into(),
                no_recording: false,
                s3,
                limits: Default::default(),
            };
            let err = run(options, std::future::pending())
                .await
                .expect_err(prefix);
            assert!(err.to_string().contains("--s3-prefix"), "{err}");
            assert!(!dir.path().join("data").exists(), "nothing created");
        }
        for prefix in ["", "rooms/", "a/b.c/", "..a/"] {
            let s3 = DevS3 {
                prefix: prefix.into(),
                ..DevS3::default()
            };
            assert!(check_s3_prefix(&s3).is_ok(), "{prefix:?}");
        }
    }
}
