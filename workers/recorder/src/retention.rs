//! Retention: a periodic sweep deletes a room's sessions that ended more than `retentionDays`
//! ago: objects first, then the catalog entry (so a failed sweep is retried by the next one).
//! Live sessions are never touched.

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span};

use crate::{Catalog, DynCatalog, DynStore, ObjectStore, Result, metrics::Metrics};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub sessions: u64,
    pub objects: u64,
}

/// Delete `room`'s sessions that ended before `now_ms - retention`. A room that is not
/// `namespace/name` is refused before anything is asked or deleted.
pub async fn sweep(
    store: &dyn ObjectStore,
    catalog: &dyn Catalog,
    room: &str,
    retention: Duration,
    now_ms: i64,
    metrics: &Metrics,
) -> Result<SweepReport> {
    let room_id = crate::parse_room(room)?;
    let cutoff = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let mut report = SweepReport::default();
    // Taken on the first deletion: a sweep that deletes nothing adds no series.
    let mut counters = None;
    for rec in catalog.ended_before(room, cutoff).await? {
        let objects = store.delete_prefix(&rec.prefix).await?;
        catalog.delete(&rec.room, &rec.session_id).await?;
        report.sessions += 1;
        report.objects += objects;
        let counters = counters.get_or_insert_with(|| metrics.retention(&room_id));
        counters.sessions_deleted.inc();
        counters.objects_deleted.inc_by(objects);
        info!(
            room, session = %rec.session_id, objects,
            ended_at = %crate::rfc3339(rec.ended_at.unwrap_or_default()),
            "retention: expired session deleted"
        );
    }
    Ok(report)
}

/// Run [`sweep`] now and every `interval` for as long as the handle is not aborted.
pub fn spawn(
    store: DynStore,
    catalog: DynCatalog,
    room: String,
    retention_days: u32,
    interval: Duration,
    metrics: Metrics,
) -> JoinHandle<()> {
    let retention = Duration::from_secs(u64::from(retention_days) * 86_400);
    let span = info_span!("retention", room = %room, retention_days);
    tokio::spawn(
        async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let now = crate::unix_ms(std::time::SystemTime::now());
                if let Err(e) = sweep(&*store, &*catalog, &room, retention, now, &metrics).await {
                    error!(error = %e, label = e.label(), "retention sweep failed; retried next interval");
                }
            }
        }
        .instrument(span),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Recording, RecordingStatus, catalog::embedded::EmbeddedCatalog, store::local::LocalStore,
    };
    use bytes::Bytes;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    /// A local store and an embedded catalog in a temp dir (kept alive by the first value).
    fn stores() -> (tempfile::TempDir, LocalStore, EmbeddedCatalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path().join("recordings")).expect("store");
        let catalog = EmbeddedCatalog::open(dir.path()).expect("catalog");
        (dir, store, catalog)
    }

    async fn session(
        store: &dyn ObjectStore,
        catalog: &dyn Catalog,
        id: &str,
        ended_days_ago: Option<i64>,
    ) {
        let prefix = format!("rooms/shows/lobby/{id}/");
        for k in [
            "source/0.ts",
            "source/1.ts",
            "source/index.m3u8",
            "index.m3u8",
            "session.json",
        ] {
            store
                .put(&format!("{prefix}{k}"), Bytes::from_static(b"x"), "x")
                .await
                .expect("put");
        }
        let ended = ended_days_ago.map(|d| NOW - d * DAY);
        catalog
            .upsert(&Recording {
                room: "shows/lobby".into(),
                session_id: id.into(),
                started_at: ended.unwrap_or(NOW - 100 * DAY) - 3_600_000,
                ended_at: ended,
                duration_seconds: ended.map(|_| 3600.0),
                status: if ended.is_some() {
                    RecordingStatus::Complete
                } else {
                    RecordingStatus::Live
                },
                renditions: vec!["source".into()],
                prefix,
                poster: None,
                bytes: 5,
                segments: 2,
                dropped_segments: 0,
            })
            .await
            .expect("upsert");
    }

    #[tokio::test]
    async fn retention_sweep_deletes_exactly_the_expired_sessions() {
        let (_dir, store, catalog) = stores();
        session(&store, &catalog, "old", Some(31)).await;
        session(&store, &catalog, "older", Some(400)).await;
        session(&store, &catalog, "recent", Some(29)).await;
        session(&store, &catalog, "live-since-long", None).await;
        // Another room's old session stays: each room sweeps its own.
        store
            .put(
                "rooms/shows/other/x/index.m3u8",
                Bytes::from_static(b"x"),
                "x",
            )
            .await
            .expect("put");

        let metrics = Metrics::default();
        let report = sweep(
            &store,
            &catalog,
            "shows/lobby",
            Duration::from_secs(30 * 86_400),
            NOW,
            &metrics,
        )
        .await
        .expect("sweep");
        assert_eq!(
            report,
            SweepReport {
                sessions: 2,
                objects: 10
            }
        );
        let lobby = metrics.retention(&crate::RoomIdentity::new("shows", "lobby"));
        assert_eq!(lobby.sessions_deleted.get(), 2);
        assert_eq!(lobby.objects_deleted.get(), 10);
        let text = metrics.encode("recorder");
        assert!(
            text.contains(r#"recorder_retention_objects_deleted_total{room="shows/lobby"} 10"#),
            "{text}"
        );
        let mut left: Vec<String> = catalog
            .list("shows/lobby", 100, None)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.session_id)
            .collect();
        left.sort();
        assert_eq!(left, ["live-since-long", "recent"]);
        assert!(
            store
                .list("rooms/shows/lobby/old/")
                .await
                .expect("list")
                .is_empty()
        );
        assert!(
            store
                .list("rooms/shows/lobby/older/")
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            store
                .list("rooms/shows/lobby/recent/")
                .await
                .expect("list")
                .len(),
            5
        );
        assert_eq!(
            store
                .list("rooms/shows/lobby/live-since-long/")
                .await
                .expect("list")
                .len(),
            5
        );
        assert_eq!(
            store.list("rooms/shows/other/").await.expect("list").len(),
            1
        );
        // A second sweep finds nothing more.
        let again = sweep(
            &store,
            &catalog,
            "shows/lobby",
            Duration::from_secs(30 * 86_400),
            NOW,
            &metrics,
        )
        .await
        .expect("sweep");
        assert_eq!(again, SweepReport::default());
    }

    #[tokio::test]
    async fn a_sweep_that_deletes_nothing_or_names_no_room_adds_no_series() {
        let (_dir, store, catalog) = stores();
        session(&store, &catalog, "recent", Some(1)).await;
        let metrics = Metrics::default();
        let retention = Duration::from_secs(30 * 86_400);
        let report = sweep(&store, &catalog, "shows/lobby", retention, NOW, &metrics)
            .await
            .expect("sweep");
        assert_eq!(report, SweepReport::default());
        for hostile in [
            "",
            "/",
            "shows",
            "shows/",
            "/lobby",
            "shows/../x",
            "shows/Lobby",
        ] {
            let err = sweep(&store, &catalog, hostile, retention, NOW, &metrics)
                .await
                .expect_err(hostile);
            assert_eq!(err.label(), "room", "{hostile:?}");
        }
        let text = metrics.encode("recorder");
        assert!(
            !text.contains("retention_sessions_deleted_total{"),
            "{text}"
        );
        assert!(!text.contains("retention_objects_deleted_total{"), "{text}");
        assert!(!text.contains(r#"room="""#), "{text}");
        let kept = catalog.get("shows/lobby", "recent").await.expect("get");
        assert!(kept.is_some(), "a recent session survives the sweep");
    }
}
