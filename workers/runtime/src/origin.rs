//! What every HTTP origin behind a CDN shares (the media worker's HLS routes and the recordings
//! API it mounts next to them): the origin-secret check and short `Cache-Control` on errors.
//!
//! ```text
//!  CDN ──X-Origin-Secret──► check_origin_secret(room's secret, headers) ─► 403 no-store | go on
//!  any response ≥ 400 ──► no_store_on_error (layer) ─► Cache-Control: no-store
//! ```

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::SecretFile;

/// Header a CDN must send with the room's origin secret when one is configured.
pub const ORIGIN_SECRET_HEADER: &str = "x-origin-secret";

/// `Cache-Control` of every error response. `no-store` rather than a short `max-age`: an error
/// is about one moment (a room that is idle now, a segment not written yet, S3 failing), a CDN
/// that keeps it even for a second serves it to every viewer of that edge, and most CDNs
/// apply their default TTL (often hours) to an error that carries no directive at all.
pub const ERROR_CACHE_CONTROL: &str = "no-store";

/// A plain-text response that no cache keeps.
pub fn plain_error(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, ERROR_CACHE_CONTROL),
        ],
        body,
    )
        .into_response()
}

/// Whether a request may be served when the room has `secret`: always without one; with one,
/// only when `X-Origin-Secret` carries it (compared in constant time). The rejection is a 403
/// that no cache keeps (a CDN caching it would lock viewers out after the secret is fixed).
pub fn check_origin_secret(
    secret: Option<&SecretFile>,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let presented = headers
        .get(ORIGIN_SECRET_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if secret.matches(presented) {
        Ok(())
    } else {
        Err(Box::new(plain_error(
            StatusCode::FORBIDDEN,
            "origin secret missing or wrong (header X-Origin-Secret)\n",
        )))
    }
}

/// Response mapper (`axum::middleware::map_response(no_store_on_error)`): an error response
/// (4xx, 5xx) gets `Cache-Control: no-store`, whoever wrote it (a handler, or axum itself: 405
/// for an odd method, 400 for a query or path it cannot parse). Success responses keep theirs.
pub async fn no_store_on_error(mut resp: Response) -> Response {
    if resp.status().is_client_error() || resp.status().is_server_error() {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(ERROR_CACHE_CONTROL),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            ORIGIN_SECRET_HEADER,
            HeaderValue::from_bytes(value).expect("header value"),
        );
        h
    }

    #[test]
    fn hostile_origin_secrets_are_refused_and_uncacheable() {
        let secret = SecretFile::fixed(crate::Secret::new("cdn-secret-123"));
        let long = vec![b'a'; 64 * 1024];
        for headers in [
            HeaderMap::new(),
            with(b""),
            with(b"cdn-secret-12"),
            with(b"cdn-secret-1234"),
            with(b"CDN-SECRET-123"),
            with(b" cdn-secret-123"),
            with(&long),
            with(b"cdn-secret-123\xff"),
        ] {
            let resp = check_origin_secret(Some(&secret), &headers).expect_err("refused");
            assert_eq!(resp.status(), StatusCode::FORBIDDEN);
            assert_eq!(resp.headers()[header::CACHE_CONTROL], ERROR_CACHE_CONTROL);
        }
        assert!(check_origin_secret(Some(&secret), &with(b"cdn-secret-123")).is_ok());
        assert!(check_origin_secret(None, &HeaderMap::new()).is_ok());
        assert!(check_origin_secret(None, &with(b"anything")).is_ok());
    }

    #[tokio::test]
    async fn only_error_responses_get_no_store() {
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let resp = no_store_on_error(
                (
                    status,
                    [(header::CACHE_CONTROL, "public, max-age=3600")],
                    "x",
                )
                    .into_response(),
            )
            .await;
            assert_eq!(
                resp.headers()[header::CACHE_CONTROL],
                "no-store",
                "{status}"
            );
        }
        let ok = no_store_on_error(
            ([(header::CACHE_CONTROL, "public, max-age=3600")], "x").into_response(),
        )
        .await;
        assert_eq!(ok.headers()[header::CACHE_CONTROL], "public, max-age=3600");
    }
}
