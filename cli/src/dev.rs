//! `roomcast dev`: every room of a StreamRoom file served from this machine: media, chat,
//! recordings and the watch page on one HTTP port, publishers on one RTMP port. The rooms and
//! their keys come from [`crate::rooms`].

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use roomcast_chat::{AdapterConfig, ChatServer, RedisUrl, RoomChat, token::SigningKey};
use roomcast_crds::worker_config::RTMP_PORT;
use roomcast_media::{
    MediaServer, RoomConfig,
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
    rooms::{DEFAULT_ROOM, DevRoom, DevS3, parse_rooms, prepare_rooms},
    web,
};

pub const DEFAULT_DATA_DIR: &str = "./roomcast-data";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_RTMP_ADDR: &str = "127.0.0.1:1935";
/// Settings of a `roomcast dev` run.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// StreamRoom YAML (one or more documents); `None` serves the default `lobby`.
    pub rooms_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub rtmp_addr: SocketAddr,
    /// MongoDB for chat history instead of the embedded store.
    pub mongodb_uri: Option<String>,
    /// Redis for the chat adapter (only useful when several processes share rooms).
    pub redis_url: Option<String>,
    /// x264 speed preset of encoded rungs.
    pub speed_preset: String,
    /// Record every room's sessions (past broadcasts): into the data directory, or into
    /// `s3` when given.
    pub record: bool,
    /// A real S3 or S3-compatible bucket for recordings instead of the data directory.
    /// Credentials come from the ambient AWS chain (`AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`, profile).
    pub s3: Option<DevS3>,
}

/// How long Ctrl-C waits for recordings to be finalised.
const RECORDING_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a person needs to publish to and watch a room.
pub fn room_banner(room: &DevRoom, rtmp: SocketAddr, http: SocketAddr) -> String {
    let rtmp_host = if rtmp.port() == RTMP_PORT {
        rtmp.ip().to_string()
    } else {
        rtmp.to_string()
    };
    let base = format!("http://{http}/{}/{}", room.namespace(), room.name());
    let rtmp_url = format!("rtmp://{rtmp_host}/live");
    format!(
        "room {ns}/{name}\n  OBS     server {rtmp_url}   stream key {key}\n  ffmpeg  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -c:v libx264 -preset veryfast -tune zerolatency -g 60 -pix_fmt yuv420p -c:a aac -f flv {rtmp_url}/{key}\n  watch   {base}/\n  HLS     {base}/hls/index.m3u8\n",
        ns = room.namespace(),
        name = room.name(),
        key = room.stream_key,
    )
}

/// Bind, start everything, print the banners, serve until `stop` resolves, shut down cleanly.
pub async fn run(options: DevOptions, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let (origin, text) = match &options.rooms_file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.display().to_string(),
                source,
            })?,
        ),
        None => ("the default room".to_owned(), DEFAULT_ROOM.to_owned()),
    };
    let rooms = parse_rooms(&text, &origin)?;
    let rooms = prepare_rooms(
        &rooms,
        &options.data_dir,
        options.record,
        options.s3.as_ref(),
    )?;

    // Media: every room on one RTMP listener, told apart by stream key.
    let media_rooms = rooms
        .iter()
        .map(|r| RoomConfig::from_worker_config(&r.worker))
        .collect::<Result<Vec<_>, _>>()?;
    let media = MediaServer::new(
        media_rooms,
        roomcast_media::MediaOptions {
            speed_preset: options.speed_preset.clone(),
        },
    )?;

    // Recording: one recorder for every recording room, local store and embedded catalog.
    let recording = start_recording(&rooms, &options, &media).await?;

    // Chat: one socket.io server per room, on the same HTTP port.
    let store_config = match &options.mongodb_uri {
        Some(uri) => roomcast_chat::config::StoreConfig::Mongo(MongoUri::new(uri.clone())),
        None => roomcast_chat::config::StoreConfig::Embedded(options.data_dir.join("chat")),
    };
    let store = roomcast_chat::open_store(&store_config).await?;
    let adapter = match &options.redis_url {
        Some(url) => AdapterConfig::Redis(RedisUrl(url.clone())),
        None => AdapterConfig::Memory,
    };
    let mut chat = ChatServer::builder(store, adapter);
    for room in &rooms {
        if let Some(spec) = &room.worker.chat {
            let key_text = std::fs::read(&spec.signing_key_file).map_err(|source| Error::Read {
                path: spec.signing_key_file.clone(),
                source,
            })?;
            let signing_key = SigningKey::from_file_contents(&key_text).map_err(|e| {
                roomcast_chat::Error::Config {
                    field: "chat.signingKeyFile",
                    message: e.to_string(),
                }
            })?;
            chat = chat.room(RoomChat {
                namespace: room.namespace().to_owned(),
                name: room.name().to_owned(),
                spec: spec.spec.clone(),
                signing_key,
            });
        }
    }
    let (chat_router, chat_handle) = chat.build().await?;

    let rtmp = TcpListener::bind(options.rtmp_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: options.rtmp_addr,
            source,
        })?;
    let http = TcpListener::bind(options.http_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: options.http_addr,
            source,
        })?;
    let rtmp_addr = rtmp.local_addr().map_err(|source| Error::Listen {
        addr: options.rtmp_addr,
        source,
    })?;
    let http_addr = http.local_addr().map_err(|source| Error::Listen {
        addr: options.http_addr,
        source,
    })?;

    let state = Arc::new(web::DevState {
        rooms: rooms.clone(),
        media: media.clone(),
        chat: chat_handle.clone(),
    });
    let mut app = web::router(state.clone())
        .merge(chat_router)
        .merge(roomcast_media::origin::hls::router(media.clone()))
        .merge(roomcast_media::origin::ops::router(media.clone()));
    if let Some(recording) = &recording {
        app = app.merge(recording.routes.clone());
    }

    println!(
        "roomcast dev: {} room(s), data in {}\n",
        rooms.len(),
        options.data_dir.display()
    );
    for room in &rooms {
        println!("{}", room_banner(room, rtmp_addr, http_addr));
    }
    println!(
        "rooms   http://{http_addr}/\nPress Ctrl-C to stop (live sessions are ended cleanly)."
    );

    let live_sync = tokio::spawn(web::sync_live_state(state.clone()));
    let rtmp_task = tokio::spawn(roomcast_media::listen::serve_rtmp(media.clone(), rtmp));
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        axum::serve(
            http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_stop_rx.await;
        })
        .await
    });

    stop.await;
    info!("stopping: closing live sessions");
    media
        .shutdown(roomcast_media::transcode::pipeline::FINISH_TIMEOUT)
        .await;
    if let Some(recording) = recording {
        recording.finish(RECORDING_FLUSH_TIMEOUT).await;
    }
    chat_handle.shutdown().await;
    live_sync.abort();
    let _ = http_stop_tx.send(());
    if let Err(e) = rtmp_task.await {
        warn!(error = %e, "rtmp task");
    }
    if let Ok(Err(e)) = http_task.await {
        warn!(error = %e, "http server");
    }
    Ok(())
}

/// Record every recording room: into the data directory or the `--s3-*` bucket, the catalog
/// embedded or in `--mongodb-uri`.
async fn start_recording(
    rooms: &[DevRoom],
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
    let store: DynStore = if options.s3.is_some() {
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
    use crate::rooms::{DEFAULT_ROOM, parse_rooms, prepare_rooms};

    #[test]
    fn banner_has_the_obs_settings_the_ffmpeg_command_and_the_urls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rooms = prepare_rooms(
            &parse_rooms(DEFAULT_ROOM, "default").expect("valid"),
            dir.path(),
            true,
            None,
        )
        .expect("prepared");
        let banner = room_banner(
            &rooms[0],
            "127.0.0.1:1935".parse().expect("addr"),
            "127.0.0.1:8080".parse().expect("addr"),
        );
        let key = &rooms[0].stream_key;
        assert!(
            banner.contains(&format!("server rtmp://127.0.0.1/live   stream key {key}")),
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
}
