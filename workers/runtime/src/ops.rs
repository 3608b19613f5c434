//! The ops router every roomcast server mounts: `/metrics` (OpenMetrics text), `/healthz`
//! (the process answers) and `/readyz` (this replica should get traffic). Each binary says
//! what its metrics and its readiness are through [`OpsState`]; the routes, bodies and
//! content types are the same everywhere.

use std::borrow::Cow;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;

/// Content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a server tells its ops routes.
pub trait OpsState: Clone + Send + Sync + 'static {
    /// The metrics, OpenMetrics text (see [`encode`]).
    fn metrics(&self) -> String;
    /// `Ok` when this replica should get traffic; otherwise why not (the `/readyz` body).
    fn readiness(&self) -> Result<(), Cow<'static, str>>;
}

/// `/metrics`, `/healthz`, `/readyz` over `state`.
pub fn router<S: OpsState>(state: S) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .with_state(state)
}

/// Encode a registry as OpenMetrics text. Encoding into a `String` fails only on a metric
/// name the registry should never have accepted; that yields what was encoded so far.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "cannot encode the metrics");
    }
    out
}

async fn readyz<S: OpsState>(State(state): State<S>) -> Response {
    match state.readiness() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics<S: OpsState>(State(state): State<S>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use axum::body::Body;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    use super::*;

    #[derive(Clone)]
    struct Fake {
        ready: Arc<AtomicBool>,
        registry: Arc<Registry>,
    }

    impl OpsState for Fake {
        fn metrics(&self) -> String {
            encode(&self.registry)
        }
        fn readiness(&self) -> Result<(), Cow<'static, str>> {
            if self.ready.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("shutting down".into())
            }
        }
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let response = router
            .clone()
            .oneshot(
                axum::http::Request::get(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            String::from_utf8_lossy(&body).into_owned(),
            content_type,
        )
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer_as_the_state_says() {
        let mut registry = Registry::with_prefix("roomcast_test");
        let counter = Counter::<u64>::default();
        registry.register("things", "Things counted", counter.clone());
        counter.inc();
        let ready = Arc::new(AtomicBool::new(true));
        let router = router(Fake {
            ready: ready.clone(),
            registry: Arc::new(registry),
        });

        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        let (status, body, content_type) = get(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(body.contains("roomcast_test_things_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        ready.store(false, Ordering::Relaxed);
        let (status, body, _) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: shutting down\n");
        assert_eq!(
            get(&router, "/healthz").await.0,
            StatusCode::OK,
            "alive while not ready"
        );
    }
}
