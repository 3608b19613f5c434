//! The watch page and the small JSON API behind it. Assets are compiled into the binary
//! (`web/`, with hls.js and socket.io-client vendored from pinned npm packages), so the page
//! needs nothing from the internet.
//!
//! | path | what |
//! |---|---|
//! | `/` | room index |
//! | `/<ns>/<room>/` | watch page: player, quality, rewind, chat, past broadcasts |
//! | `/assets/…` | CSS, JS, vendored libraries |
//! | `/api/rooms`, `/api/rooms/<ns>/<room>` | rooms with live state and viewers |
//! | `POST /api/rooms/<ns>/<room>/chat-token` | a chat token for a display name (local use only) |

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use roomcast_chat::{
    ChatHandle,
    protocol::Role,
    token::{Claims, mint},
};
use roomcast_crds::RoomIdentity;
use roomcast_media::MediaServer;
use serde::{Deserialize, Serialize};

use crate::rooms::{DevRoom, DevRooms};

/// Lifetime of tokens the dev server mints.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// What the web routes read.
pub struct DevState {
    pub rooms: DevRooms,
    pub media: Arc<MediaServer>,
    pub chat: ChatHandle,
}

impl DevState {
    fn media_room(&self, room: &DevRoom) -> Option<&Arc<roomcast_media::room::Room>> {
        self.media.rooms.get(room.id())
    }

    fn summary(&self, room: &DevRoom) -> RoomSummary {
        let media = self.media_room(room);
        let base = room.id().path_prefix();
        RoomSummary {
            namespace: room.id().namespace.clone(),
            name: room.id().name.clone(),
            live: media.is_some_and(|m| m.is_live()),
            viewers: media.map_or(0, |m| m.viewers()),
            hls_url: format!("{base}/hls/index.m3u8"),
            chat_path: room
                .worker
                .chat
                .as_ref()
                .map(|_| format!("{base}/chat/socket.io")),
            recordings_url: room
                .worker
                .recording
                .as_ref()
                .map(|_| format!("{base}/recordings")),
            renditions: room
                .worker
                .transcode
                .renditions
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            segment_seconds: room.worker.transcode.segment_seconds,
            dvr_window_seconds: room.worker.transcode.dvr_window_seconds,
            latency: room.worker.playback.latency,
        }
    }
}

/// A room as the page sees it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummary {
    pub namespace: String,
    pub name: String,
    pub live: bool,
    pub viewers: usize,
    pub hls_url: String,
    pub chat_path: Option<String>,
    pub recordings_url: Option<String>,
    pub renditions: Vec<String>,
    pub segment_seconds: u32,
    pub dvr_window_seconds: u32,
    /// `standard` or `low`: the page turns on hls.js's low-latency mode for `low`.
    pub latency: roomcast_crds::Latency,
}

type AppState = Arc<DevState>;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { html(INDEX_HTML) }))
        .route(
            "/{ns}/{room}",
            get(|Path((ns, room)): Path<(String, String)>| async move {
                Redirect::permanent(&format!("/{ns}/{room}/"))
            }),
        )
        .route("/{ns}/{room}/", get(watch_page))
        .route("/assets/{*path}", get(asset))
        .route("/api/rooms", get(list_rooms))
        .route("/api/rooms/{ns}/{room}", get(get_room))
        .route("/api/rooms/{ns}/{room}/chat-token", post(chat_token))
        .with_state(state)
}

const INDEX_HTML: &str = include_str!("../../web/index.html");
const WATCH_HTML: &str = include_str!("../../web/watch.html");

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn watch_page(
    State(state): State<AppState>,
    Path((ns, room)): Path<(String, String)>,
) -> Response {
    match state.rooms.get(&ns, &room) {
        Some(_) => html(WATCH_HTML),
        None => (StatusCode::NOT_FOUND, format!("no room {ns}/{room}\n")).into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = match path.as_str() {
        "app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../web/app.css"),
        ),
        "index.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/index.js"),
        ),
        "watch.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/watch.js"),
        ),
        "vendor/hls.min.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/vendor/hls.min.js"),
        ),
        "vendor/socket.io.min.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../web/vendor/socket.io.min.js"),
        ),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn list_rooms(State(state): State<AppState>) -> Json<Vec<RoomSummary>> {
    Json(state.rooms.iter().map(|r| state.summary(r)).collect())
}

async fn get_room(
    State(state): State<AppState>,
    Path((ns, room)): Path<(String, String)>,
) -> Response {
    match state.rooms.get(&ns, &room) {
        Some(r) => Json(state.summary(r)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no room {ns}/{room}")),
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    name: String,
    #[serde(default = "viewer")]
    role: Role,
}

fn viewer() -> Role {
    Role::Viewer
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { error: message })).into_response()
}

/// Local stand-in for an application's login: anyone on this machine may chat as any name and
/// role. A deployment mints tokens in its own backend (see the chat README).
async fn chat_token(
    State(state): State<AppState>,
    Path((ns, room)): Path<(String, String)>,
    Json(request): Json<TokenRequest>,
) -> Response {
    let Some(room) = state.rooms.get(&ns, &room) else {
        return error(StatusCode::NOT_FOUND, format!("no room {ns}/{room}"));
    };
    // The key the room holds since the start; nothing is read from disk per token.
    let Some(key) = &room.chat_key else {
        return error(StatusCode::NOT_FOUND, "this room has no chat".into());
    };
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            "name must be 1 to 64 characters".into(),
        );
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        // One user per display name: the same name keeps its identity (and its bans).
        sub: format!("dev:{}", name.to_lowercase()),
        name: name.to_owned(),
        role: request.role,
        exp: now + i64::try_from(DEV_TOKEN_TTL.as_secs()).unwrap_or(i64::MAX),
    };
    match mint(key, &claims) {
        Ok(token) => Json(serde_json::json!({ "token": token.expose() })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Tell each room's chat when its stream goes live or idle (the `live` event clients see).
pub async fn sync_live_state(state: AppState) {
    let mut last: HashMap<RoomIdentity, bool> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        for room in state.rooms.iter() {
            let live = state.media_room(room).is_some_and(|m| m.is_live());
            if last.get(room.id()) != Some(&live) {
                let id = room.id();
                state.chat.set_live(&id.namespace, &id.name, live).await;
                last.insert(id.clone(), live);
            }
        }
    }
}
