//! `/metrics`, `/healthz` and `/readyz` on one port.

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio::sync::watch;

use crate::metrics::Metrics;

#[derive(Clone)]
struct HttpState {
    metrics: Metrics,
    ready: watch::Receiver<bool>,
}

pub fn router(metrics: Metrics, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(HttpState { metrics, ready })
}

async fn metrics_handler(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Ready once the caches have synced and, with leader election, this replica leads.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches syncing or waiting for leadership",
        )
    }
}
