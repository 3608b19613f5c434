//! The recordings HTTP API, merged by the media origin under `/<namespace>/<room>/`:
//!
//! - `GET recordings?limit=&before=`: the room's sessions newest first; `next` is the `before`
//!   of the following page (absent on the last page).
//! - `GET recordings/{session}`: one session.
//! - `GET recordings/{session}/{path}`: VOD playback (`index.m3u8`, `<rendition>/index.m3u8`,
//!   `<rendition>/<seq>.ts`, or for CMAF `<rendition>/init-<id>.mp4` and `<rendition>/<seq>.m4s`,
//!   `session.json`) proxied from the object store.
//!
//! Proxy rather than presigned redirects: a player needs no S3 credentials nor a reachable
//! bucket, the CDN in front of the origin caches segments for a year (they never change:
//! `immutable`), so S3 sees each object about once per CDN edge, and the relative URIs in the
//! playlists keep working whichever host serves them. Presigned URLs would expire (breaking
//! long pauses and CDN caching) and expose the bucket's host. For serverless VOD the bucket can
//! still sit behind a CDN directly (see the README).
//!
//! Like the HLS routes beside it, every route refuses a request without the room's CDN origin
//! secret (`X-Origin-Secret`, when the room has one) and every error response carries
//! `Cache-Control: no-store`: both from `roomcast_runtime::origin`, the one check both use.

use axum::{
    Json, Router,
    extract::{Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state, map_response},
    response::{IntoResponse, Response},
    routing::get,
};
use roomcast_runtime::SecretFile;
use roomcast_runtime::origin::{check_origin_secret, no_store_on_error};
use serde::{Deserialize, Serialize};

use crate::{
    DynCatalog, DynStore, Error, Recording, RecordingStatus,
    catalog::{DEFAULT_PAGE, clamp_limit},
    events::{parse_init_file_name, parse_segment_file_name},
    store::{check_key, content_type},
};

/// Whether `file` is a segment or an init segment: each is written once under a name never
/// reused (a reconnect brings a new init id), so caches may keep it forever.
fn is_segment_or_init(file: &str) -> bool {
    parse_segment_file_name(file).is_some() || parse_init_file_name(file).is_some()
}

/// Segments (and CMAF init segments) never change once stored.
pub const SEGMENT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Playlists and session.json of finished sessions change only if retention deletes them.
pub const FINISHED_CACHE_CONTROL: &str = "public, max-age=3600";
/// Anything of a session still being recorded.
pub const LIVE_CACHE_CONTROL: &str = "no-cache";

#[derive(Clone)]
pub struct ApiState {
    pub catalog: DynCatalog,
    pub store: DynStore,
    /// `namespace/name`.
    pub room: String,
    /// The room's CDN origin secret: when set, requests without it are refused (403).
    pub origin_secret: Option<SecretFile>,
}

/// The API's routes (see the module docs), to nest under `/<namespace>/<room>`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/recordings", get(list))
        .route("/recordings/{session}", get(get_one))
        .route("/recordings/{session}/{*path}", get(object))
        .route_layer(from_fn_with_state(state.clone(), origin_guard))
        .layer(map_response(no_store_on_error))
        .with_state(state)
}

/// The room's origin secret, checked before any handler reads the catalog or the store.
async fn origin_guard(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    match check_origin_secret(s.origin_secret.as_ref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refused) => *refused,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// A catalog entry plus where to play it, relative to `recordings/`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordingView {
    #[serde(flatten)]
    rec: Recording,
    #[serde(skip_serializing_if = "Option::is_none")]
    playlist: Option<String>,
}

impl From<Recording> for RecordingView {
    fn from(rec: Recording) -> Self {
        let playlist =
            (rec.status != RecordingStatus::Live).then(|| format!("{}/index.m3u8", rec.session_id));
        Self { rec, playlist }
    }
}

#[derive(Serialize)]
struct Page {
    recordings: Vec<RecordingView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<i64>,
}

struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e {
            Error::S3 { .. } | Error::Local { .. } => StatusCode::BAD_GATEWAY,
            Error::Key(_) | Error::Name(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(error = %e, label = e.label(), "recordings API");
        ApiError(status, e.label().to_owned())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not found".into())
}

async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let limit = clamp_limit(q.limit.unwrap_or(DEFAULT_PAGE));
    let recs = s.catalog.list(&s.room, limit, q.before).await?;
    let next = (recs.len() as u32 >= limit)
        .then(|| recs.last().map(|r| r.started_at))
        .flatten();
    Ok(Json(Page {
        recordings: recs.into_iter().map(RecordingView::from).collect(),
        next,
    }))
}

async fn get_one(
    State(s): State<ApiState>,
    Path(session): Path<String>,
) -> Result<Json<RecordingView>, ApiError> {
    match s.catalog.get(&s.room, &session).await? {
        Some(rec) => Ok(Json(rec.into())),
        None => Err(not_found()),
    }
}

async fn object(
    State(s): State<ApiState>,
    Path((session, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_key(&path).map_err(|_| not_found())?;
    let Some(rec) = s.catalog.get(&s.room, &session).await? else {
        return Err(not_found());
    };
    let key = format!("{}{path}", rec.prefix);
    let Some(body) = s.store.get(&key).await? else {
        return Err(not_found());
    };
    let file = path.rsplit('/').next().unwrap_or_default();
    let cache = if is_segment_or_init(file) {
        SEGMENT_CACHE_CONTROL
    } else if rec.status == RecordingStatus::Live {
        LIVE_CACHE_CONTROL
    } else {
        FINISHED_CACHE_CONTROL
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&key)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::Secret;

    use axum::body::Body;
    use bytes::Bytes;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        Catalog, ObjectStore, catalog::embedded::EmbeddedCatalog, store::local::LocalStore,
    };

    async fn call(app: &Router, uri: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        send(app, Request::get(uri).body(Body::empty()).expect("request")).await
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
        let resp = app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, headers, body)
    }

    #[tokio::test]
    async fn api_lists_newest_first_pages_and_proxies_vod_with_cache_headers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
        let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
        for i in 0..3 {
            let mut rec = crate::catalog::suite::recording(
                "shows/lobby",
                &format!("s{i}"),
                1_000 * (i + 1),
                RecordingStatus::Complete,
            );
            rec.prefix = format!("rooms/shows/lobby/s{i}/");
            catalog.upsert(&rec).await.expect("upsert");
        }
        catalog
            .upsert(&crate::catalog::suite::recording(
                "shows/other",
                "x",
                9_000,
                RecordingStatus::Complete,
            ))
            .await
            .expect("upsert");
        store
            .put(
                "rooms/shows/lobby/s1/index.m3u8",
                Bytes::from_static(b"#EXTM3U\n"),
                "x",
            )
            .await
            .expect("put");
        store
            .put(
                "rooms/shows/lobby/s1/source/0.ts",
                Bytes::from_static(b"TS"),
                "x",
            )
            .await
            .expect("put");
        let app = router(ApiState {
            catalog,
            store,
            room: "shows/lobby".into(),
            origin_secret: None,
        });

        let (status, _, body) = call(&app, "/recordings?limit=2").await;
        assert_eq!(status, StatusCode::OK);
        let page: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let ids: Vec<_> = page["recordings"]
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["sessionId"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(ids, ["s2", "s1"]);
        assert_eq!(page["recordings"][0]["playlist"], "s2/index.m3u8");
        assert_eq!(page["recordings"][0]["status"], "complete");
        let next = page["next"].as_i64().expect("next");
        let (_, _, body) = call(&app, &format!("/recordings?limit=2&before={next}")).await;
        let page: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(page["recordings"][0]["sessionId"], "s0");
        assert!(page.get("next").is_none(), "{page}");

        let (status, _, body) = call(&app, "/recordings/s1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("\"sessionId\":\"s1\""));
        assert_eq!(call(&app, "/recordings/x").await.0, StatusCode::NOT_FOUND);

        let (status, headers, body) = call(&app, "/recordings/s1/source/0.ts").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"TS");
        assert_eq!(headers[header::CACHE_CONTROL], SEGMENT_CACHE_CONTROL);
        assert_eq!(headers[header::CONTENT_TYPE], "video/mp2t");
        let (status, headers, _) = call(&app, "/recordings/s1/index.m3u8").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(headers[header::CACHE_CONTROL], FINISHED_CACHE_CONTROL);
        assert_eq!(
            call(&app, "/recordings/s1/source/9.ts").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, "/recordings/s1/../s2/index.m3u8").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, "/recordings/x/index.m3u8").await.0,
            StatusCode::NOT_FOUND
        );
    }

    /// One finished session `s1` with a master playlist and one segment, served with `secret`.
    async fn one_session(dir: &std::path::Path, secret: Option<&str>) -> Router {
        let store = Arc::new(LocalStore::new(dir.join("rec")).expect("store"));
        let catalog = Arc::new(EmbeddedCatalog::open(dir).expect("catalog"));
        let mut rec =
            crate::catalog::suite::recording("shows/lobby", "s1", 1_000, RecordingStatus::Complete);
        rec.prefix = "rooms/shows/lobby/s1/".into();
        catalog.upsert(&rec).await.expect("upsert");
        for (key, body) in [
            ("rooms/shows/lobby/s1/index.m3u8", &b"#EXTM3U\n"[..]),
            ("rooms/shows/lobby/s1/source/0.ts", b"TS"),
            ("rooms/shows/lobby/s1/low/init-1.mp4", b"ftypmoov"),
            ("rooms/shows/lobby/s1/low/0.m4s", b"moofmdat"),
            ("rooms/shows/lobby/s1/low/notes.mp4", b"not an init"),
            ("rooms/shows/lobby/secret.txt", b"not a recording"),
            ("rooms/shows/lobby/secret.mp4", b"not a recording"),
            ("rooms/shows/lobby/secret.m4s", b"not a recording"),
        ] {
            store
                .put(key, Bytes::copy_from_slice(body), "x")
                .await
                .expect("put");
        }
        router(ApiState {
            catalog,
            store,
            room: "shows/lobby".into(),
            origin_secret: secret.map(|s| SecretFile::fixed(Secret::new(s))),
        })
    }

    fn get_with(uri: &str, secret: Option<&[u8]>) -> Request<Body> {
        let mut req = Request::get(uri);
        if let Some(s) = secret {
            req = req.header(
                roomcast_runtime::origin::ORIGIN_SECRET_HEADER,
                HeaderValue::from_bytes(s).expect("header value"),
            );
        }
        req.body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn recordings_need_the_origin_secret_like_hls_and_refusals_are_not_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = one_session(dir.path(), Some("cdn-secret-123")).await;
        let long = vec![b'x'; 32 * 1024];
        for uri in [
            "/recordings",
            "/recordings/s1",
            "/recordings/s1/index.m3u8",
            "/recordings/s1/source/0.ts",
            "/recordings/nope/index.m3u8",
        ] {
            for presented in [
                None,
                Some(&b""[..]),
                Some(b"cdn-secret-12"),
                Some(b"cdn-secret-1234"),
                Some(b"CDN-SECRET-123"),
                Some(&long[..]),
            ] {
                let (status, headers, body) = send(&app, get_with(uri, presented)).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{uri} {presented:?}");
                assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
                assert!(!String::from_utf8_lossy(&body).contains("s1"), "{uri}");
            }
        }
        let ok = |uri| send(&app, get_with(uri, Some(b"cdn-secret-123")));
        let (status, headers, body) = ok("/recordings/s1/source/0.ts").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"TS");
        assert_eq!(headers[header::CACHE_CONTROL], SEGMENT_CACHE_CONTROL);
        assert_eq!(ok("/recordings").await.0, StatusCode::OK);
        // CMAF: the init and its segments, as a CDN and a player need them.
        for (uri, body, content_type, cache) in [
            (
                "/recordings/s1/low/init-1.mp4",
                &b"ftypmoov"[..],
                "video/mp4",
                SEGMENT_CACHE_CONTROL,
            ),
            (
                "/recordings/s1/low/0.m4s",
                b"moofmdat",
                "video/iso.segment",
                SEGMENT_CACHE_CONTROL,
            ),
            // Not a name the recorder writes: served, but never as immutable.
            (
                "/recordings/s1/low/notes.mp4",
                b"not an init",
                "video/mp4",
                FINISHED_CACHE_CONTROL,
            ),
        ] {
            let (status, headers, got) = ok(uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(&got[..], body, "{uri}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{uri}");
            assert_eq!(headers[header::CACHE_CONTROL], cache, "{uri}");
        }
        assert_eq!(
            ok("/recordings/s1/low/init-2.mp4").await.0,
            StatusCode::NOT_FOUND
        );

        // Without a secret configured, no header is needed.
        let dir = tempfile::tempdir().expect("tempdir");
        let open = one_session(dir.path(), None).await;
        assert_eq!(
            call(&open, "/recordings/s1/index.m3u8").await.0,
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn hostile_paths_queries_and_methods_get_uncacheable_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = one_session(dir.path(), Some("cdn-secret-123")).await;
        let secret = Some(&b"cdn-secret-123"[..]);
        for uri in [
            "/recordings/s1/../secret.txt",
            "/recordings/s1/..%2F..%2Fsecret.txt",
            "/recordings/s1/%2e%2e/secret.txt",
            "/recordings/s1/source/..%2F..%2F..%2Fsecret.txt",
            "/recordings/s1//etc/passwd",
            "/recordings/s1/source%5C..%5C..%5Csecret.txt",
            "/recordings/s1/%00.ts",
            "/recordings/s1/%00.m4s",
            "/recordings/s1/low/..%2F..%2Fsecret.m4s",
            "/recordings/s1/low/%2e%2e/%2e%2e/secret.mp4",
            "/recordings/s1/low/init-1.mp4/..%2F..%2F..%2Fsecret.mp4",
            "/recordings/s1/low/init-%2e%2e.mp4",
            "/recordings/s1/low/init-1.mp4%00",
            "/recordings/..%2Fsecret.m4s",
            "/recordings/..%2Fsecret.txt",
            "/recordings/%2e%2e/secret.txt",
            "/recordings/..",
            "/recordings/s1%7C..",
            "/recordings?limit=abc",
            "/recordings?before=99999999999999999999999",
            "/recordings/%ff%fe",
        ] {
            let (status, headers, body) = send(&app, get_with(uri, secret)).await;
            assert!(
                status.is_client_error(),
                "{uri}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            assert!(!String::from_utf8_lossy(&body).contains("not a recording"));
            assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri}");
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "FOO"] {
            for uri in ["/recordings", "/recordings/s1", "/recordings/s1/index.m3u8"] {
                let req = Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(
                        roomcast_runtime::origin::ORIGIN_SECRET_HEADER,
                        "cdn-secret-123",
                    )
                    .body(Body::from("x".repeat(1024)))
                    .expect("request");
                let (status, headers, _) = send(&app, req).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
                assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{method} {uri}");
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_is_a_502_that_no_cdn_keeps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s3 = crate::testing::S3TestServer::start().await;
        let store = Arc::new(s3.store().await);
        s3.stop().await;
        let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
        let rec =
            crate::catalog::suite::recording("shows/lobby", "s1", 1_000, RecordingStatus::Complete);
        catalog.upsert(&rec).await.expect("upsert");
        let app = router(ApiState {
            catalog,
            store,
            room: "shows/lobby".into(),
            origin_secret: None,
        });
        let (status, headers, _) = call(&app, "/recordings/s1/index.m3u8").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}
