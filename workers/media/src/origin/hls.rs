//! The HLS origin: playlists and segments of every room, with CDN-friendly headers.
//!
//! ```text
//! GET|HEAD /<ns>/<room>/hls/index.m3u8                   master playlist
//! GET|HEAD /<ns>/<room>/hls/<rendition>/index.m3u8       media playlist (DVR window)
//! GET|HEAD /<ns>/<room>/hls/<rendition>/<token>-<seq>.ts segment (immutable)
//! GET      /<ns>/<room>/status                           JSON live state
//! ```
//!
//! `<token>` is the session's ([`crate::room::names`]): a name of another session is a 404.
//! Low-latency rooms serve CMAF instead: `<token>-<seq>.m4s` segments,
//! `<token>-<seq>.<part>.m4s` parts and `<token>-init-<id>.mp4` init segments, media playlist
//! requests with `_HLS_msn`/`_HLS_part` block until the playlist has that part, and `_HLS_skip`
//! asks for a delta update ([`super::low_latency`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use roomcast_runtime::origin::{
    ERROR_CACHE_CONTROL, check_origin_secret, no_store_on_error, plain_error as plain,
};

use super::low_latency::{
    Delivery, blocking_cache_control, delivery, wait_for_part, wait_for_playlist,
};
use crate::metrics::HTTP_KINDS;
use crate::room::names::{MediaFile, MediaName};
use crate::room::session::{Rendered, Session};
use crate::room::{Liveness, Room};
use crate::server::MediaServer;

pub use roomcast_runtime::origin::ORIGIN_SECRET_HEADER;
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";

type AppState = Arc<MediaServer>;

const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const EXPOSED_HEADERS: HeaderValue = HeaderValue::from_static("etag,content-length,age");
const ALLOWED_METHODS: HeaderValue = HeaderValue::from_static("GET,HEAD,OPTIONS");

/// CORS preflight of a browser player: any origin, the read methods, whatever headers it asks
/// for.
async fn preflight(headers: HeaderMap) -> Response {
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS);
    if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("access-control-request-headers"),
    );
    resp
}

/// The HLS origin's routes (see the module docs). The caller composes the HTTP port from it,
/// [`super::ops::router`] and whatever else it serves there (the recordings API).
///
/// CORS (any origin, for browser players) is written by the handlers themselves
/// (`Req::finish`, `preflight`): the same headers as tower-http's `CorsLayer`, which cost a
/// fifth of the playlist throughput as a middleware. Every error response, axum's own 405 and
/// 400 included, carries `Cache-Control: no-store` (`no_store_on_error`), so a CDN never keeps
/// one for its default time.
pub fn router(server: AppState) -> Router {
    Router::new()
        .route(
            "/{ns}/{room}/hls/index.m3u8",
            get(master).options(preflight),
        )
        .route(
            "/{ns}/{room}/hls/{rendition}/index.m3u8",
            get(media).options(preflight),
        )
        .route(
            "/{ns}/{room}/hls/{rendition}/{segment}",
            get(segment).options(preflight),
        )
        .route("/{ns}/{room}/status", get(status).options(preflight))
        .layer(map_response(no_store_on_error))
        .with_state(server)
}

#[derive(Clone, Copy)]
enum Kind {
    Master,
    Media,
    Segment,
    Part,
    Status,
}

impl Kind {
    /// The `kind` label; the metrics pre-create the counters of these same labels.
    fn label(self) -> &'static str {
        HTTP_KINDS[self as usize]
    }
}

struct Req<'a> {
    server: &'a MediaServer,
    headers: &'a HeaderMap,
    peer: Option<SocketAddr>,
    kind: Kind,
}

impl<'a> Req<'a> {
    fn new(
        server: &'a MediaServer,
        request: &'a Request,
        peer: Option<SocketAddr>,
        kind: Kind,
    ) -> Self {
        Req {
            server,
            headers: request.headers(),
            peer,
            kind,
        }
    }

    fn finish(&self, mut resp: Response) -> Response {
        self.server
            .metrics
            .http_request(self.kind.label(), resp.status().as_u16());
        let headers = resp.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_HEADERS);
        resp
    }

    /// Find the room and check the origin secret.
    fn room(&self, ns: &str, name: &str) -> Result<Arc<Room>, Box<Response>> {
        let Some(room) = self.server.rooms.by_path(ns, name) else {
            return Err(Box::new(plain(StatusCode::NOT_FOUND, "unknown room\n")));
        };
        check_origin_secret(room.origin_secret(), self.headers)?;
        Ok(room.clone())
    }

    fn saw_viewer(&self, room: &Room) {
        let forwarded = self
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let ip = forwarded.or(self.peer.map(|p| p.ip()));
        let ua = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        room.saw_viewer(ip, ua);
    }
}

fn idle(room: &Room) -> Response {
    let body = format!("room {} is idle: nobody is publishing\n", room.cfg.id());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, ERROR_CACHE_CONTROL.to_owned()),
            (header::RETRY_AFTER, room.cfg.segment_seconds.to_string()),
            (
                header::HeaderName::from_static("x-roomcast-room-state"),
                "idle".to_owned(),
            ),
        ],
        body,
    )
        .into_response()
}

fn starting(room: &Room) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, ERROR_CACHE_CONTROL.to_owned()),
            (header::RETRY_AFTER, "1".to_owned()),
            (
                header::HeaderName::from_static("x-roomcast-room-state"),
                "starting".to_owned(),
            ),
        ],
        format!("room {} is starting: no segment yet\n", room.cfg.id()),
    )
        .into_response()
}

/// A cacheable body with ETag / If-None-Match handling. Header values come ready-made: this is
/// the path every playlist and segment request takes.
fn cached(
    req: &Req<'_>,
    body: Bytes,
    etag: HeaderValue,
    content_type: &'static str,
    cache_control: HeaderValue,
) -> Response {
    let not_modified = req
        .headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().as_bytes() == etag.as_bytes() || t.trim() == "*")
        });
    let len = body.len();
    let mut resp = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        req.server.metrics.http_bytes_out.inc_by(len as u64);
        Response::new(Body::from(body))
    };
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, cache_control);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !not_modified {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

/// What a playlist request found in the room's session.
enum Found {
    /// No such playlist (an unknown rendition).
    Unknown,
    /// The session has no segment for it yet.
    Starting,
    Ready(Rendered),
}

/// The two playlist routes: look the room up, then let `find` pick the playlist from its
/// session; the answers around it (idle, starting, cached with ETag) are the same.
fn playlist(
    req: &Req<'_>,
    ns: &str,
    name: &str,
    blocking: bool,
    find: impl FnOnce(&Session) -> Found,
) -> Response {
    let resp = match req.room(ns, name) {
        Err(r) => *r,
        Ok(room) => match room.liveness() {
            Liveness::Idle => idle(&room),
            Liveness::Session(s) => match find(&s) {
                Found::Unknown => plain(StatusCode::NOT_FOUND, "unknown rendition\n"),
                Found::Starting => starting(&room),
                Found::Ready(p) => {
                    req.saw_viewer(&room);
                    let cache_control = if blocking {
                        blocking_cache_control(Duration::from_secs(u64::from(
                            room.cfg.segment_seconds,
                        )))
                    } else {
                        room.playlist_cache_control.clone()
                    };
                    cached(req, p.body, p.etag, PLAYLIST_CONTENT_TYPE, cache_control)
                }
            },
        },
    };
    req.finish(resp)
}

async fn master(
    State(server): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let req = Req::new(&server, &request, Some(peer), Kind::Master);
    playlist(&req, &ns, &name, false, |s| {
        s.master_playlist().map_or(Found::Starting, Found::Ready)
    })
}

async fn media(
    State(server): State<AppState>,
    Path((ns, name, rendition)): Path<(String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let req = Req::new(&server, &request, Some(peer), Kind::Media);
    let room = match req.room(&ns, &name) {
        Err(r) => return req.finish(*r),
        Ok(room) => room,
    };
    // Delivery directives mean something in low-latency rooms only; a standard room answers
    // them as a plain request, as a server without blocking reload or delta updates must
    // (6.2.5.1, 6.2.5.2).
    let directives = match room.cfg.part_target() {
        Some(_) => delivery(request.uri().query()),
        None => Ok(Delivery::default()),
    };
    let directives = match directives {
        Err(message) => return req.finish(plain(StatusCode::BAD_REQUEST, message)),
        Ok(directives) => directives,
    };
    if let Some(directive) = directives.block
        && let Liveness::Session(s) = room.liveness()
        && let Err((status, message)) = wait_for_playlist(&s, &rendition, directive).await
    {
        return req.finish(plain(status, message));
    }
    let blocking = directives.block.is_some();
    playlist(&req, &ns, &name, blocking, |s| {
        match s.media_playlist(&rendition, directives.skip) {
            None => Found::Unknown,
            Some(p) if p.segments == 0 => Found::Starting,
            Some(p) => Found::Ready(p),
        }
    })
}

async fn segment(
    State(server): State<AppState>,
    Path((ns, name, rendition, file)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    let wanted = MediaName::parse(&file);
    // Parts are counted apart from segments: a low-latency viewer asks for several a second,
    // and they would otherwise hide the segment rate.
    let kind = match wanted.map(|w| w.file) {
        Some(MediaFile::Part { .. }) => Kind::Part,
        _ => Kind::Segment,
    };
    let req = Req::new(&server, &request, None, kind);
    let resp = match req.room(&ns, &name) {
        Err(r) => *r,
        Ok(room) => media_file(&req, &room, &rendition, &file, wanted).await,
    };
    req.finish(resp)
}

/// A segment, part or init segment of a rendition (`file`, parsed as `wanted`): immutable
/// once written.
async fn media_file(
    req: &Req<'_>,
    room: &Room,
    rendition: &str,
    file: &str,
    wanted: Option<MediaName>,
) -> Response {
    let low_latency = room.cfg.part_target().is_some();
    let wanted = wanted.filter(|w| match w.file {
        MediaFile::Segment { cmaf, .. } => cmaf == low_latency,
        MediaFile::Part { .. } | MediaFile::Init { .. } => low_latency,
    });
    let Some(wanted) = wanted else {
        return plain(StatusCode::NOT_FOUND, "no such segment\n");
    };
    let Liveness::Session(s) = room.liveness() else {
        return plain(
            StatusCode::NOT_FOUND,
            "segment not available: the room is idle\n",
        );
    };
    // Another session's name (the one before, or one before a worker restart) never gets this
    // session's bytes: the CDN would keep them under that name.
    if wanted.token != s.token {
        return plain(
            StatusCode::NOT_FOUND,
            "segment of another session: reload the playlist\n",
        );
    }
    let wanted = wanted.file;
    let body = match wanted {
        MediaFile::Segment { seq, .. } => s.segment(rendition, seq),
        MediaFile::Part { seq, index } => wait_for_part(&s, rendition, seq, index).await,
        MediaFile::Init { id } => s.init_segment(rendition, id),
    };
    let Some(body) = body else {
        return plain(
            StatusCode::NOT_FOUND,
            "segment not in the DVR window (expired or not yet written)\n",
        );
    };
    match HeaderValue::from_str(&format!("\"{}-{rendition}-{file}\"", s.id)) {
        Ok(etag) => cached(
            req,
            body,
            etag,
            wanted.content_type(),
            room.segment_cache_control.clone(),
        ),
        Err(_) => plain(StatusCode::NOT_FOUND, "no such segment\n"),
    }
}

async fn status(
    State(server): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    request: Request,
) -> Response {
    let req = Req::new(&server, &request, None, Kind::Status);
    let resp = match req.room(&ns, &name) {
        Err(r) => *r,
        Ok(room) => {
            let session = match room.liveness() {
                Liveness::Session(s) => Some(s),
                Liveness::Idle => None,
            };
            let live = room.is_live();
            let phase = match (&session, live) {
                (_, true) => "Live",
                (Some(s), false) if !s.is_ended() => "Reconnecting",
                _ => "Idle",
            };
            let body = serde_json::json!({
                "room": room.id().to_string(),
                "phase": phase,
                "live": live,
                "sessionId": session.as_ref().map(|s| s.id.clone()),
                "sessionStartedAt": session.as_ref().map(|s| s.started_at.to_rfc3339()),
                "ingestKbps": room.ingest(0),
                "viewers": room.viewers(),
                "renditions": session.as_ref().map(|s| s.rendition_names()).unwrap_or_default(),
            });
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
    };
    req.finish(resp)
}
