//! The ops routes of the worker, `/metrics`, `/healthz` and `/readyz`, in the shape every
//! roomcast server has ([`roomcast_runtime::ops`]).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use roomcast_runtime::ops::OpsState;

use crate::server::MediaServer;

/// `/metrics`, `/healthz`, `/readyz` (the shape every roomcast server has), for the metrics
/// port and the HTTP port.
pub fn router(server: Arc<MediaServer>) -> Router {
    roomcast_runtime::ops::router(Ops(server))
}

/// What the ops routes read: not ready while shutting down or when a listener stopped; the viewer gauges are brought up
/// to date before each scrape (they otherwise move only when players fetch playlists).
#[derive(Clone)]
struct Ops(Arc<MediaServer>);

impl OpsState for Ops {
    fn metrics(&self) -> String {
        for room in self.0.rooms.iter() {
            room.viewers();
        }
        self.0.metrics.encode()
    }

    fn readiness(&self) -> Result<(), Cow<'static, str>> {
        if self.0.is_shutting_down() {
            return Err("shutting down".into());
        }
        match self.0.listeners_gone().as_slice() {
            [] => Ok(()),
            gone => Err(format!("listener stopped: {}", gone.join(", ")).into()),
        }
    }
}
