//! The recorder's series on the worker's `/metrics`: a process recording two rooms with two
//! recorders (as with two `--config` files) exports both rooms, each under its `room` label, and
//! every recorder metric once.

mod common;

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use common::{RoomSpec, TestServer};
use roomcast_crds::RoomIdentity;
use roomcast_media::recording::{RecordedRoom, RoomRecorder};
use roomcast_recorder::{
    RecordEvent, RecorderConfig, catalog::embedded::EmbeddedCatalog, store::local::LocalStore,
};

/// A recorder of `room` alone, with its own spool, store and catalog under `dir`.
async fn record_one(server: &TestServer, room: &RoomIdentity, dir: &Path) -> RoomRecorder {
    let recorded = RecordedRoom {
        id: room.clone(),
        path_prefix: room.path_prefix(),
        segment_seconds: 1,
        retention_days: None,
    };
    RoomRecorder::start(
        &server.server,
        &[recorded],
        RecorderConfig::new(dir.join("spool")),
        Arc::new(LocalStore::new(dir.join("recordings")).expect("store")),
        Arc::new(EmbeddedCatalog::open(dir).expect("catalog")),
    )
    .await
    .expect("recorder")
}

/// One clean session of `room` with `segments` segments of `source`.
fn session(room: &RoomIdentity, segments: u64) -> Vec<RecordEvent> {
    let (session_id, room) = (format!("{}-1", room.name), room.to_string());
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut events = vec![RecordEvent::SessionStarted {
        session_id: session_id.clone(),
        room: room.clone(),
        renditions: vec!["source".into()],
        started_at: at,
    }];
    events.extend((0..segments).map(|seq| RecordEvent::SegmentClosed {
        session_id: session_id.clone(),
        room: room.clone(),
        rendition: "source".into(),
        seq,
        duration: Duration::from_secs(1),
        discontinuity: false,
        program_date_time: at + Duration::from_secs(seq),
        bytes: Bytes::from(vec![0x47; 188 * 10]),
        init: None,
        attributes: Default::default(),
    }));
    events.push(RecordEvent::SessionEnded {
        session_id,
        room,
        started_at: at,
        ended_at: at + Duration::from_secs(segments),
        segments,
        clean: true,
    });
    events
}

/// Every sample of a text exposition, by series (name and labels).
fn samples(text: &str) -> HashMap<&str, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn two_recordings_in_one_process_export_each_room_under_its_label_once() {
    let server = TestServer::start(vec![
        RoomSpec::new("lobby", "lobby-key-0123456789"),
        RoomSpec::new("stage", "stage-key-0123456789"),
    ])
    .await;
    let (lobby, stage) = (
        RoomIdentity::new("shows", "lobby"),
        RoomIdentity::new("shows", "stage"),
    );
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let recorders = [
        record_one(&server, &lobby, dirs[0].path()).await,
        record_one(&server, &stage, dirs[1].path()).await,
    ];

    // Before any session each room shows its drop reasons at zero.
    let text = server.get("/metrics").await.text();
    for room in ["shows/lobby", "shows/stage"] {
        for reason in roomcast_recorder::metrics::DROP_REASONS {
            let name = format!(
                r#"roomcast_media_recorder_segments_dropped_total{{room="{room}",reason="{reason}"}}"#
            );
            assert_eq!(
                samples(&text).get(name.as_str()),
                Some(&0.0),
                "{name} in\n{text}"
            );
        }
    }

    for (recorder, (room, segments)) in recorders.iter().zip([(&lobby, 3), (&stage, 2)]) {
        for event in session(room, segments) {
            recorder.recorder.record(event);
        }
        tokio::time::timeout(Duration::from_secs(30), recorder.recorder.flush())
            .await
            .expect("flushed in time");
    }

    let text = server.get("/metrics").await.text();
    for (name, lobby, stage) in [
        ("segments_uploaded_total", 3.0, 2.0),
        ("segments_spooled_total", 3.0, 2.0),
        ("sessions_finalized_total", 1.0, 1.0),
        ("uploaded_bytes_total", 3.0 * 1880.0, 2.0 * 1880.0),
    ] {
        for (room, expected) in [("shows/lobby", lobby), ("shows/stage", stage)] {
            let labelled = format!(r#"roomcast_media_recorder_{name}{{room="{room}"}}"#);
            assert_eq!(
                samples(&text).get(labelled.as_str()),
                Some(&expected),
                "{labelled} in\n{text}"
            );
        }
    }
    // Registered once: a name a scrape sees twice makes Prometheus refuse the whole scrape.
    for metric in [
        "segments_uploaded",
        "segments_dropped",
        "spool_bytes",
        "upload_lag_seconds",
    ] {
        let help = format!("# HELP roomcast_media_recorder_{metric} ");
        assert_eq!(text.matches(&help).count(), 1, "{help} in\n{text}");
    }
    assert_eq!(
        samples(&text).get("roomcast_media_recorder_spool_bytes"),
        Some(&0.0),
        "{text}"
    );
    for recorder in recorders {
        recorder.finish(Duration::from_secs(5)).await;
    }
    server.stop().await;
}
