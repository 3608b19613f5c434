//! Prometheus metrics of the operator, prefix `roomcast_operator`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use roomcast_crds::RoomPhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub children_applied: Family<KindLabels, Counter>,
    pub children_unchanged: Counter,
    pub status_patches: Counter,
    /// Routes in the ingest gateway's table, rooms left out of it, writes and failed passes.
    pub routes: Gauge,
    pub routes_left_out: Gauge,
    pub routes_writes: Counter,
    pub routes_errors: Counter,
    rooms_by_phase: Family<PhaseLabels, Gauge>,
    phases: Arc<Mutex<HashMap<String, RoomPhase>>>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("roomcast_operator");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let children_applied = Family::<KindLabels, Counter>::default();
        let children_unchanged = Counter::default();
        let status_patches = Counter::default();
        let rooms_by_phase = Family::<PhaseLabels, Gauge>::default();
        registry.register("reconciles", "Reconciliations started", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconciliation takes",
            reconcile_duration.clone(),
        );
        registry.register(
            "children_applied",
            "Child objects applied, by kind",
            children_applied.clone(),
        );
        registry.register(
            "children_unchanged",
            "Child objects skipped because they were already applied",
            children_unchanged.clone(),
        );
        registry.register(
            "status_patches",
            "Room status patches sent",
            status_patches.clone(),
        );
        registry.register("rooms", "Rooms by phase", rooms_by_phase.clone());
        let routes = Gauge::default();
        let routes_left_out = Gauge::default();
        let routes_writes = Counter::default();
        let routes_errors = Counter::default();
        registry.register(
            "ingest_routes",
            "Rooms the ingest gateway's routing table routes",
            routes.clone(),
        );
        registry.register(
            "ingest_routes_left_out",
            "Rooms behind the ingest gateway left out of its routing table (see their IngestRouted condition)",
            routes_left_out.clone(),
        );
        registry.register(
            "ingest_routes_writes",
            "Writes of the ingest gateway's routing table",
            routes_writes.clone(),
        );
        registry.register(
            "ingest_routes_errors",
            "Passes that could not update the ingest gateway's routing table",
            routes_errors.clone(),
        );
        for phase in RoomPhase::ALL {
            rooms_by_phase
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(0);
        }
        Self {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            children_applied,
            children_unchanged,
            status_patches,
            routes,
            routes_left_out,
            routes_writes,
            routes_errors,
            rooms_by_phase,
            phases: Arc::default(),
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    /// Record a room's phase (`None` when the room is gone) and refresh the per-phase gauge.
    pub fn set_phase(&self, room: &str, phase: Option<RoomPhase>) {
        let Ok(mut phases) = self.phases.lock() else {
            return;
        };
        match phase {
            Some(phase) => phases.insert(room.to_owned(), phase),
            None => phases.remove(room),
        };
        for p in RoomPhase::ALL {
            let count = phases.values().filter(|v| **v == p).count();
            self.rooms_by_phase
                .get_or_create(&PhaseLabels { phase: p.as_str() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        roomcast_runtime::ops::encode(&self.registry)
    }
}
