//! The recorder end to end at the library level, against a real S3 protocol server (s3s) and the
//! local directory store, with fault injection: S3 outage, a killed recorder, a full spool.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

use super::*;
use crate::{
    Catalog, DynCatalog, ObjectStore, RecordingStatus,
    catalog::embedded::EmbeddedCatalog,
    playlist::StreamAttributes,
    store::local::LocalStore,
    testing::{LogCapture, S3TestServer},
};

const ROOM: &str = "shows/lobby";
const T0: u64 = 1_800_000_000;

/// [`ROOM`], parsed.
fn lobby() -> crate::RoomIdentity {
    crate::parse_room(ROOM).expect("room")
}

fn at(secs_after: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_secs_f64(secs_after)
}

fn started(session: &str, renditions: &[&str]) -> RecordEvent {
    RecordEvent::SessionStarted {
        session_id: session.into(),
        room: ROOM.into(),
        renditions: renditions.iter().map(|r| (*r).to_owned()).collect(),
        started_at: at(0.0),
    }
}

fn segment(session: &str, rendition: &str, seq: u64, body: Bytes) -> RecordEvent {
    RecordEvent::SegmentClosed {
        session_id: session.into(),
        room: ROOM.into(),
        rendition: rendition.into(),
        seq,
        duration: Duration::from_secs(2),
        discontinuity: false,
        program_date_time: at(seq as f64 * 2.0),
        bytes: body,
        init: None,
        attributes: attributes(rendition),
    }
}

/// How the media worker describes each test rendition.
fn attributes(rendition: &str) -> StreamAttributes {
    let height = if rendition == "source" { 720 } else { 360 };
    StreamAttributes {
        codecs: Some("avc1.64001f,mp4a.40.2".into()),
        resolution: Some((height * 16 / 9, height)),
        frame_rate: Some(30.0),
    }
}

fn ended(session: &str, segments: u64, clean: bool) -> RecordEvent {
    RecordEvent::SessionEnded {
        session_id: session.into(),
        room: ROOM.into(),
        started_at: at(0.0),
        ended_at: at(segments as f64 * 2.0),
        segments,
        clean,
    }
}

fn body(rendition: &str, seq: u64) -> Bytes {
    Bytes::from(format!("{rendition}-{seq}-").repeat(50))
}

fn fast_config(spool: &Path) -> RecorderConfig {
    RecorderConfig {
        prefix: "rooms/".into(),
        retry_min_delay: Duration::from_millis(20),
        retry_max_delay: Duration::from_millis(200),
        ..RecorderConfig::new(spool)
    }
}

/// A recorder with [`fast_config`] spooling under `<dir>/spool`.
async fn start_in(dir: &Path, store: DynStore, catalog: DynCatalog) -> Recorder {
    Recorder::start(fast_config(&dir.join("spool")), store, catalog)
        .await
        .expect("start")
}

/// The catalog entry of one of [`ROOM`]'s sessions, which must exist.
async fn entry(catalog: &dyn Catalog, session: &str) -> crate::Recording {
    catalog
        .get(ROOM, session)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("no catalog entry for {session}"))
}

/// A real S3 server that is down until restarted, its store, and a temp dir holding a catalog.
async fn s3_down() -> (
    S3TestServer,
    DynStore,
    tempfile::TempDir,
    Arc<EmbeddedCatalog>,
) {
    let mut s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    s3.stop().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    (s3, store, dir, catalog)
}

async fn flush(rec: &Recorder) {
    tokio::time::timeout(Duration::from_secs(60), rec.flush())
        .await
        .expect("flush within 60 s");
}

/// The sequence numbers a stored media playlist lists, in order.
async fn playlist_seqs(store: &dyn ObjectStore, key: &str) -> Vec<u64> {
    let text = store
        .get(key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{key} stored"));
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"), "{text}");
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("valid media playlist");
    parsed
        .segments
        .iter()
        .map(|s| s.uri.trim_end_matches(".ts").parse().expect("<seq>.ts"))
        .collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_session_is_stored_finalised_and_catalogued_as_complete() {
    let s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(&dir.path().join("data")).expect("catalog"));
    let rec = start_in(dir.path(), store.clone(), catalog.clone()).await;

    rec.record(started("s1", &["source", "360p"]));
    flush(&rec).await;
    let live = entry(&*catalog, "s1").await;
    assert_eq!(live.status, RecordingStatus::Live);

    for seq in 0..5 {
        for r in ["source", "360p"] {
            rec.record(segment("s1", r, seq, body(r, seq)));
        }
    }
    rec.record(ended("s1", 5, true));
    flush(&rec).await;

    let prefix = "rooms/shows/lobby/s1/";
    let keys = store.list(prefix).await.expect("list");
    for r in ["source", "360p"] {
        for seq in 0..5 {
            let key = format!("{prefix}{r}/{seq}.ts");
            assert!(keys.contains(&key), "{key} in {keys:?}");
            assert_eq!(store.get(&key).await.expect("get"), Some(body(r, seq)));
        }
        assert_eq!(
            playlist_seqs(&*store, &format!("{prefix}{r}/index.m3u8")).await,
            vec![0, 1, 2, 3, 4]
        );
    }
    let master = store
        .get(&format!("{prefix}index.m3u8"))
        .await
        .expect("get")
        .expect("master");
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("master playlist");
    let uris: Vec<_> = master.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["source/index.m3u8", "360p/index.m3u8"]);
    // The live master's attributes, as the media worker described each stream.
    for (variant, (width, height)) in master.variants.iter().zip([(1280, 720), (640, 360)]) {
        assert_eq!(
            variant.codecs.as_deref(),
            Some("avc1.64001f,mp4a.40.2"),
            "{variant:?}"
        );
        let resolution = variant.resolution.as_ref().map(|r| (r.width, r.height));
        assert_eq!(resolution, Some((width, height)), "{variant:?}");
        assert_eq!(variant.frame_rate, Some(30.0), "{variant:?}");
        assert!(variant.average_bandwidth.is_some(), "{variant:?}");
    }
    let summary: serde_json::Value = serde_json::from_slice(
        &store
            .get(&format!("{prefix}session.json"))
            .await
            .expect("get")
            .expect("session.json"),
    )
    .expect("json");
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["room"], ROOM);
    assert_eq!(summary["durationSeconds"], 10.0);
    assert_eq!(summary["segments"], 10);
    assert_eq!(summary["startedAt"], "2027-01-15T08:00:00Z");

    let listed = catalog.list(ROOM, 10, None).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RecordingStatus::Complete);
    assert_eq!(listed[0].segments, 10);
    assert_eq!(listed[0].prefix, prefix);
    assert_eq!(rec.metrics().room(&lobby()).segments_uploaded.get(), 10);
    assert_eq!(rec.spool_bytes(), 0);
    assert!(
        std::fs::read_dir(dir.path().join("spool"))
            .expect("spool")
            .next()
            .is_none(),
        "spool emptied"
    );
    assert!(rec.health().borrow().healthy);

    // A late segment or a repeated end does not reopen (or rewrite) the finished session.
    rec.record(segment("s1", "source", 5, body("source", 5)));
    rec.record(ended("s1", 5, true));
    flush(&rec).await;
    assert_eq!(entry(&*catalog, "s1").await.segments, 10);
    assert!(
        !dir.path().join("spool/s1").exists(),
        "late segment spooled"
    );
    assert_eq!(
        entry(&*catalog, "s1").await.status,
        RecordingStatus::Complete
    );
    assert_eq!(rec.spool_bytes(), 0);
}

#[tokio::test]
async fn s3_outage_mid_session_loses_and_duplicates_no_segment() {
    let mut s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let rec = start_in(dir.path(), store.clone(), catalog.clone()).await;
    let mut health = rec.health();

    rec.record(started("s1", &["source"]));
    for seq in 0..5 {
        rec.record(segment("s1", "source", seq, body("source", seq)));
    }
    flush(&rec).await;

    s3.stop().await;
    for seq in 5..15 {
        rec.record(segment("s1", "source", seq, body("source", seq)));
    }
    tokio::time::timeout(Duration::from_secs(30), health.wait_for(|h| !h.healthy))
        .await
        .expect("unhealthy in time")
        .expect("health");
    assert!(
        health.borrow().message.contains("failing"),
        "{:?}",
        *health.borrow()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rec.spool_bytes() > 0, "segments wait in the spool");
    s3.restart().await;

    for seq in 15..20 {
        rec.record(segment("s1", "source", seq, body("source", seq)));
    }
    rec.record(ended("s1", 20, true));
    flush(&rec).await;

    let prefix = "rooms/shows/lobby/s1/source/";
    let segs: Vec<String> = store
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .filter(|k| k.ends_with(".ts"))
        .collect();
    assert_eq!(segs.len(), 20, "{segs:?}");
    for seq in 0..20 {
        assert_eq!(
            store.get(&format!("{prefix}{seq}.ts")).await.expect("get"),
            Some(body("source", seq))
        );
    }
    assert_eq!(
        playlist_seqs(&*store, &format!("{prefix}index.m3u8")).await,
        (0..20).collect::<Vec<_>>()
    );
    assert!(rec.metrics().room(&lobby()).upload_retries.get() > 0);
    assert_eq!(rec.metrics().room(&lobby()).dropped_total(), 0);
    assert!(health.borrow().healthy, "{:?}", *health.borrow());
    let got = entry(&*catalog, "s1").await;
    assert_eq!(got.status, RecordingStatus::Complete);
}

#[tokio::test]
async fn a_killed_recorder_leaves_a_session_the_next_one_finalises_as_interrupted() {
    let mut s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = dir.path().join("spool");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));

    let first = Recorder::start(fast_config(&spool), store.clone(), catalog.clone())
        .await
        .expect("start");
    first.record(started("s1", &["source", "360p"]));
    for seq in 0..3 {
        for r in ["source", "360p"] {
            first.record(segment("s1", r, seq, body(r, seq)));
        }
    }
    flush(&first).await;
    // S3 goes away, three more segments land in the spool only, then the process "dies".
    s3.stop().await;
    for seq in 3..6 {
        for r in ["source", "360p"] {
            first.record(segment("s1", r, seq, body(r, seq)));
        }
    }
    wait_until("6 more segments spooled", || {
        first.metrics().room(&lobby()).segments_spooled.get() == 12
    })
    .await;
    drop(first);
    assert_eq!(entry(&*catalog, "s1").await.status, RecordingStatus::Live);

    s3.restart().await;
    let second = Recorder::start(fast_config(&spool), store.clone(), catalog.clone())
        .await
        .expect("restart");
    flush(&second).await;

    let got = entry(&*catalog, "s1").await;
    assert_eq!(got.status, RecordingStatus::Interrupted);
    assert_eq!(got.ended_at, Some(crate::unix_ms(at(12.0))));
    assert_eq!(got.duration_seconds, Some(12.0));
    for r in ["source", "360p"] {
        let key = format!("rooms/shows/lobby/s1/{r}/index.m3u8");
        assert_eq!(playlist_seqs(&*store, &key).await, vec![0, 1, 2, 3, 4, 5]);
        for seq in 0..6 {
            let seg = format!("rooms/shows/lobby/s1/{r}/{seq}.ts");
            assert_eq!(
                store.get(&seg).await.expect("get"),
                Some(body(r, seq)),
                "{seg}"
            );
        }
    }
    let summary = store
        .get("rooms/shows/lobby/s1/session.json")
        .await
        .expect("get")
        .expect("json");
    assert!(String::from_utf8_lossy(&summary).contains("\"status\": \"interrupted\""));
    assert_eq!(second.metrics().room(&lobby()).sessions_recovered.get(), 1);
    assert!(!spool.join("s1").exists(), "spool emptied");
}

#[tokio::test]
async fn a_full_spool_drops_segments_without_blocking_and_reports_unhealthy_until_it_drains() {
    let (mut s3, store, dir, catalog) = s3_down().await;
    let cfg = RecorderConfig {
        spool_size_bytes: 4 * 4096,
        ..fast_config(&dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store.clone(), catalog.clone())
        .await
        .expect("start");
    let mut health = rec.health();

    rec.record(started("s1", &["source"]));
    let began = Instant::now();
    for seq in 0..50 {
        rec.record(segment(
            "s1",
            "source",
            seq,
            Bytes::from(vec![seq as u8; 4096]),
        ));
    }
    let took = began.elapsed();
    assert!(
        took < Duration::from_millis(250),
        "record() blocked: {took:?}"
    );
    assert_eq!(
        rec.metrics()
            .room(&lobby())
            .dropped("spool_full")
            .map(|c| c.get()),
        Some(46)
    );
    assert_eq!(rec.metrics().room(&lobby()).dropped_total(), 46);
    assert!(!health.borrow().healthy);
    assert!(
        health.borrow().message.contains("spool full"),
        "{:?}",
        *health.borrow()
    );

    s3.restart().await;
    tokio::time::timeout(Duration::from_secs(30), health.wait_for(|h| h.healthy))
        .await
        .expect("healthy again once the spool drains")
        .expect("health");
    // Recording resumes after the gap.
    rec.record(segment("s1", "source", 60, Bytes::from(vec![60u8; 4096])));
    rec.record(ended("s1", 61, true));
    flush(&rec).await;
    let seqs = playlist_seqs(&*store, "rooms/shows/lobby/s1/source/index.m3u8").await;
    assert_eq!(seqs, vec![0, 1, 2, 3, 60]);
    let text = store
        .get("rooms/shows/lobby/s1/source/index.m3u8")
        .await
        .expect("get")
        .expect("playlist");
    assert_eq!(
        String::from_utf8_lossy(&text)
            .matches("#EXT-X-DISCONTINUITY\n")
            .count(),
        1
    );
    let got = entry(&*catalog, "s1").await;
    assert_eq!(got.dropped_segments, 46);
}

#[tokio::test]
async fn renditions_not_configured_for_recording_are_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let cfg = RecorderConfig {
        renditions: vec!["720p".into()],
        ..fast_config(&dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store.clone(), catalog.clone())
        .await
        .expect("start");
    rec.record(started("s1", &["source", "720p"]));
    for seq in 0..2 {
        rec.record(segment("s1", "source", seq, body("source", seq)));
        rec.record(segment("s1", "720p", seq, body("720p", seq)));
    }
    rec.record(ended("s1", 2, true));
    flush(&rec).await;
    let keys = store.list("rooms/").await.expect("list");
    assert!(keys.iter().all(|k| !k.contains("/source/")), "{keys:?}");
    assert_eq!(entry(&*catalog, "s1").await.renditions, ["720p"]);
}

#[tokio::test]
async fn a_session_run_against_mongodb_is_listed_complete() {
    let Some((uri, _server)) = roomcast_store::test_support::mongo_for_tests()
        .await
        .expect("a MongoDB-compatible test server (secantusd-py) or ROOMCAST_TEST_MONGODB_URI")
    else {
        return;
    };
    let db = roomcast_store::mongo::connect(&uri, "roomcast-recorder-test")
        .await
        .expect("connect");
    let catalog = Arc::new(
        crate::catalog::mongo::MongoCatalog::open(&db)
            .await
            .expect("catalog"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
    let rec = start_in(dir.path(), store, catalog.clone()).await;
    // Unique per run: the suite may share a real MongoDB.
    let session = format!("mongo-{}", crate::unix_ms(SystemTime::now()));
    rec.record(started(&session, &["source"]));
    flush(&rec).await;
    let live = entry(&*catalog, &session).await;
    assert_eq!(live.status, RecordingStatus::Live);
    for seq in 0..3 {
        rec.record(segment(&session, "source", seq, body("source", seq)));
    }
    rec.record(ended(&session, 3, true));
    flush(&rec).await;
    let got = entry(&*catalog, &session).await;
    assert_eq!(got.status, RecordingStatus::Complete);
    assert_eq!(got.segments, 3);
    assert_eq!(got.duration_seconds, Some(6.0));
}

#[tokio::test]
async fn s3_credentials_never_reach_the_logs() {
    let captured = LogCapture::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s3 = S3TestServer::start().await;
    let mut settings = s3.settings();
    let secret = "wrong-secret-that-must-not-be-logged";
    if let Some(c) = settings.credentials.as_mut() {
        c.secret_access_key = crate::Secret::new(secret);
    }
    tracing::info!(?settings, "connecting");
    let store: DynStore = Arc::new(
        crate::store::s3::S3Store::connect(&settings)
            .await
            .expect("client"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let rec = start_in(dir.path(), store, catalog).await;
    let mut health = rec.health();
    rec.record(started("s1", &["source"]));
    rec.record(segment("s1", "source", 0, body("source", 0)));
    tokio::time::timeout(Duration::from_secs(30), health.wait_for(|h| !h.healthy))
        .await
        .expect("signature errors reported")
        .expect("health");
    let message = health.borrow().message.clone();
    drop(rec);
    let logs = captured.text();
    assert!(logs.contains("store write failed"), "{logs}");
    assert!(!logs.contains(secret), "secret in the logs");
    assert!(!message.contains(secret), "secret in the health message");
}

#[tokio::test]
async fn a_live_session_whose_spool_was_lost_is_finalised_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    // A worker on another node recorded 4 segments of "lost", then died with its spool.
    let prefix = "rooms/shows/lobby/lost/";
    for seq in 0..4 {
        store
            .put(
                &format!("{prefix}source/{seq}.ts"),
                body("source", seq),
                "video/mp2t",
            )
            .await
            .expect("put");
    }
    let mut live = crate::catalog::suite::recording(ROOM, "lost", 1_000_000, RecordingStatus::Live);
    live.prefix = prefix.into();
    live.renditions = vec!["source".into()];
    catalog.upsert(&live).await.expect("upsert");
    let mut done =
        crate::catalog::suite::recording(ROOM, "done", 500_000, RecordingStatus::Complete);
    done.prefix = "rooms/shows/lobby/done/".into();
    catalog.upsert(&done).await.expect("upsert");

    let rec = start_in(dir.path(), store.clone(), catalog.clone()).await;
    let n = rec
        .finalise_orphans(ROOM, Duration::from_secs(2))
        .await
        .expect("orphans");
    assert_eq!(n, 1);
    let got = entry(&*catalog, "lost").await;
    assert_eq!(got.status, RecordingStatus::Interrupted);
    assert_eq!(got.ended_at, Some(1_008_000));
    assert_eq!(got.segments, 4);
    assert_eq!(
        playlist_seqs(&*store, &format!("{prefix}source/index.m3u8")).await,
        vec![0, 1, 2, 3]
    );
    assert!(
        store
            .get(&format!("{prefix}index.m3u8"))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(catalog.get(ROOM, "done").await.expect("get"), Some(done));
    // Nothing left to do the second time.
    assert_eq!(
        rec.finalise_orphans(ROOM, Duration::from_secs(2))
            .await
            .expect("orphans"),
        0
    );
}

#[tokio::test]
async fn a_store_down_at_start_is_reported_and_retried_while_sessions_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    s3.stop().await;
    let catalog: DynCatalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    // A session a previous worker left `live` with its spool gone: finalised once S3 answers.
    let mut orphan = crate::catalog::suite::recording(ROOM, "old", 1_000, RecordingStatus::Live);
    orphan.prefix = "rooms/shows/lobby/old/".into();
    catalog.upsert(&orphan).await.expect("upsert");
    let rec = Arc::new(start_in(dir.path(), store, catalog.clone()).await);
    let health = rec.health();
    let settle = tokio::spawn({
        let rec = rec.clone();
        async move {
            rec.finalise_orphans_retrying(ROOM, Duration::from_secs(2))
                .await
        }
    });
    wait_until("unhealthy while S3 is down", || !health.borrow().healthy).await;
    let message = health.borrow().message.clone();
    assert!(message.contains("cannot reach s3://vods"), "{message}");

    // A session starts while S3 is down: it records into the spool, and is no orphan.
    rec.record(started("s1", &["source"]));
    rec.record(segment("s1", "source", 0, body("source", 0)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    s3.restart().await;
    let finalised = tokio::time::timeout(Duration::from_secs(30), settle)
        .await
        .expect("settled once S3 answers")
        .expect("task");
    assert_eq!(finalised, 1, "only the orphan");
    rec.record(segment("s1", "source", 1, body("source", 1)));
    flush(&rec).await;
    wait_until("healthy again", || health.borrow().healthy).await;
    let objects = s3.objects();
    for key in [
        "rooms/shows/lobby/s1/source/0.ts",
        "rooms/shows/lobby/s1/source/1.ts",
        "rooms/shows/lobby/old/session.json",
    ] {
        assert!(objects.contains(&key.to_owned()), "{key}: {objects:?}");
    }
    assert_eq!(
        entry(&*catalog, "old").await.status,
        RecordingStatus::Interrupted
    );
    assert_eq!(entry(&*catalog, "s1").await.status, RecordingStatus::Live);
}

#[tokio::test]
async fn a_budget_larger_than_the_spools_disk_is_lowered_below_it_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let catalog: DynCatalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let cfg = RecorderConfig {
        // A volume claiming far more than any disk here has.
        spool_size_bytes: u64::MAX / 2,
        ..fast_config(&dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store.clone(), catalog.clone())
        .await
        .expect("start");
    let room = crate::spool::Spool::open(dir.path().join("spool"))
        .expect("spool")
        .room()
        .expect("statvfs");
    assert!(rec.spool_budget() < room, "{} < {room}", rec.spool_budget());
    assert!(
        rec.spool_budget() >= room / 100 * 70,
        "{}",
        rec.spool_budget()
    );
    drop(rec);
    // A budget the disk can hold is kept as configured.
    let cfg = RecorderConfig {
        spool_size_bytes: 1 << 20,
        ..fast_config(&dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store, catalog).await.expect("start");
    assert_eq!(rec.spool_budget(), 1 << 20);
}

/// `event` of another room than [`ROOM`].
fn in_room(room: &str, mut event: RecordEvent) -> RecordEvent {
    match &mut event {
        RecordEvent::SessionStarted { room: r, .. }
        | RecordEvent::SegmentClosed { room: r, .. }
        | RecordEvent::SessionEnded { room: r, .. } => *r = room.to_owned(),
    }
    event
}

/// The value of one series in a text exposition; `None` when the series is not there.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn one_recorder_counts_each_of_its_rooms_under_its_own_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let rec = start_in(dir.path(), store, catalog).await;
    const STAGE: &str = "shows/stage";

    rec.record(started("a", &["source"]));
    rec.record(in_room(STAGE, started("b", &["source"])));
    for seq in 0..3 {
        rec.record(segment("a", "source", seq, body("source", seq)));
    }
    rec.record(in_room(STAGE, segment("b", "source", 0, body("source", 0))));
    // Renditions no room has, one of them a path: dropped, and counted for the room they came in.
    for (seq, rendition) in [(1, "../../etc/passwd"), (2, ""), (3, "x y")] {
        rec.record(in_room(STAGE, segment("b", rendition, seq, body("x", seq))));
    }
    // A room that does not parse is never a label, not even an empty one.
    for hostile in ["", "shows", "shows/../x", "shows/Lobby"] {
        rec.record(in_room(hostile, started("h", &["source"])));
        rec.record(in_room(
            hostile,
            segment("h", "source", 0, body("source", 0)),
        ));
    }
    rec.record(ended("a", 3, true));
    rec.record(in_room(STAGE, ended("b", 1, true)));
    flush(&rec).await;

    let text = rec.metrics().encode("recorder");
    let value = |name: &str, room: &str| {
        series(&text, &format!("recorder_{name}{{room=\"{room}\"}}"))
            .unwrap_or_else(|| panic!("{name} of {room} in\n{text}"))
    };
    for (name, lobby, stage) in [
        ("segments_spooled_total", 3.0, 1.0),
        ("segments_uploaded_total", 3.0, 1.0),
        ("sessions_finalized_total", 1.0, 1.0),
        ("upload_lag_seconds_count", 3.0, 1.0),
        ("upload_retries_total", 0.0, 0.0),
    ] {
        assert_eq!(value(name, ROOM), lobby, "{name} of {ROOM}");
        assert_eq!(value(name, STAGE), stage, "{name} of {STAGE}");
    }
    let body_len = body("source", 0).len() as f64;
    assert_eq!(value("uploaded_bytes_total", ROOM), 3.0 * body_len);
    assert_eq!(value("uploaded_bytes_total", STAGE), body_len);
    let dropped = |room: &str, reason: &str| {
        series(
            &text,
            &format!("recorder_segments_dropped_total{{room=\"{room}\",reason=\"{reason}\"}}"),
        )
        .unwrap_or_else(|| panic!("{reason} drops of {room} in\n{text}"))
    };
    assert_eq!(dropped(STAGE, "invalid_rendition"), 3.0);
    assert_eq!(dropped(ROOM, "invalid_rendition"), 0.0);
    for reason in ["spool_full", "spool_write_failed"] {
        assert_eq!(dropped(ROOM, reason), 0.0);
        assert_eq!(dropped(STAGE, reason), 0.0);
    }
    let rooms: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_once("room=\"")?.1.split_once('"').map(|(r, _)| r))
        .collect();
    assert_eq!(rooms, [ROOM, STAGE].into(), "{text}");
    assert_eq!(series(&text, "recorder_spool_bytes"), Some(0.0), "{text}");
}

#[tokio::test]
async fn a_room_that_only_overflows_the_spool_has_its_drops_and_zeros_labelled() {
    let (_s3, store, dir, catalog) = s3_down().await;
    let cfg = RecorderConfig {
        spool_size_bytes: 4096,
        ..fast_config(&dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store, catalog).await.expect("start");
    // No session start seen (the recorder came up mid-session): the first segment fills the
    // spool, the next two are dropped.
    for seq in 0..3 {
        rec.record(in_room(
            "shows/stage",
            segment("b", "source", seq, Bytes::from(vec![1u8; 4096])),
        ));
    }
    let text = rec.metrics().encode("recorder");
    assert_eq!(
        series(
            &text,
            r#"recorder_segments_dropped_total{room="shows/stage",reason="spool_full"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            r#"recorder_segments_dropped_total{room="shows/stage",reason="spool_write_failed"}"#
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(series(&text, "recorder_spool_bytes"), Some(4096.0));
    assert!(!text.contains(ROOM), "{text}");
}

#[tokio::test]
async fn recorders_sharing_metrics_add_up_their_spools_and_keep_their_rooms_apart() {
    let (mut s3, store, dir, catalog) = s3_down().await;
    let catalog: DynCatalog = catalog;
    let metrics = crate::metrics::Metrics::default();
    let start = |spool: &str| {
        let cfg = RecorderConfig {
            metrics: metrics.clone(),
            ..fast_config(&dir.path().join(spool))
        };
        Recorder::start(cfg, store.clone(), catalog.clone())
    };
    let lobby = start("spool-lobby").await.expect("start");
    let stage = start("spool-stage").await.expect("start");
    lobby.record(started("a", &["source"]));
    stage.record(in_room("shows/stage", started("b", &["source"])));
    for seq in 0..2 {
        lobby.record(segment("a", "source", seq, body("source", seq)));
    }
    stage.record(in_room(
        "shows/stage",
        segment("b", "source", 0, body("source", 0)),
    ));
    wait_until("3 segments spooled", || {
        let text = metrics.encode("recorder");
        series(
            &text,
            r#"recorder_segments_spooled_total{room="shows/lobby"}"#,
        ) == Some(2.0)
            && series(
                &text,
                r#"recorder_segments_spooled_total{room="shows/stage"}"#,
            ) == Some(1.0)
    })
    .await;
    let text = metrics.encode("recorder");
    let held = (lobby.spool_bytes() + stage.spool_bytes()) as f64;
    assert_eq!(held, 3.0 * body("source", 0).len() as f64);
    assert_eq!(series(&text, "recorder_spool_bytes"), Some(held), "{text}");

    s3.restart().await;
    lobby.record(ended("a", 2, true));
    stage.record(in_room("shows/stage", ended("b", 1, true)));
    flush(&lobby).await;
    flush(&stage).await;
    let text = metrics.encode("recorder");
    assert_eq!(series(&text, "recorder_spool_bytes"), Some(0.0), "{text}");
    assert_eq!(
        series(
            &text,
            r#"recorder_sessions_finalized_total{room="shows/lobby"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            r#"recorder_sessions_finalized_total{room="shows/stage"}"#
        ),
        Some(1.0)
    );
}

/// A CMAF segment of [`segment`]'s shape that plays after init segment `init` (whose bytes say
/// which init it is, so a test sees which one was stored).
fn cmaf(session: &str, rendition: &str, seq: u64, init: u32, discontinuity: bool) -> RecordEvent {
    let mut event = segment(session, rendition, seq, body(rendition, seq));
    if let RecordEvent::SegmentClosed {
        init: i,
        discontinuity: d,
        ..
    } = &mut event
    {
        *i = Some(crate::InitSegment {
            id: init,
            bytes: init_body(rendition, init),
        });
        *d = discontinuity;
    }
    event
}

fn init_body(rendition: &str, init: u32) -> Bytes {
    Bytes::from(format!("ftyp-moov-{rendition}-{init}"))
}

#[tokio::test]
async fn a_cmaf_session_stores_each_init_once_and_maps_it_in_the_vod_playlist() {
    let s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let rec = start_in(dir.path(), store.clone(), catalog.clone()).await;
    let prefix = "rooms/shows/lobby/s1/source/";

    rec.record(started("s1", &["source"]));
    rec.record(cmaf("s1", "source", 0, 1, false));
    flush(&rec).await;
    assert_eq!(
        store
            .get(&format!("{prefix}init-1.mp4"))
            .await
            .expect("get"),
        Some(init_body("source", 1))
    );
    // Gone from the store, init 1 must not come back with the next segment that needs it:
    // it was uploaded once, not with every segment.
    store
        .delete_prefix(&format!("{prefix}init-1.mp4"))
        .await
        .expect("delete");
    rec.record(cmaf("s1", "source", 1, 1, false));
    // A publisher reconnect: a new init, and a discontinuity.
    rec.record(cmaf("s1", "source", 2, 2, true));
    rec.record(cmaf("s1", "source", 3, 2, false));
    rec.record(ended("s1", 4, true));
    flush(&rec).await;

    let mut keys = store.list("rooms/shows/lobby/s1/").await.expect("list");
    keys.sort();
    assert_eq!(
        keys,
        [
            "rooms/shows/lobby/s1/index.m3u8",
            "rooms/shows/lobby/s1/session.json",
            "rooms/shows/lobby/s1/source/0.m4s",
            "rooms/shows/lobby/s1/source/1.m4s",
            "rooms/shows/lobby/s1/source/2.m4s",
            "rooms/shows/lobby/s1/source/3.m4s",
            "rooms/shows/lobby/s1/source/index.m3u8",
            "rooms/shows/lobby/s1/source/init-2.mp4",
        ]
    );
    assert_eq!(
        store
            .get(&format!("{prefix}init-2.mp4"))
            .await
            .expect("get"),
        Some(init_body("source", 2))
    );
    assert_eq!(
        store.get(&format!("{prefix}2.m4s")).await.expect("get"),
        Some(body("source", 2))
    );
    // Inits are not segments: the counters see four.
    assert_eq!(rec.metrics().room(&lobby()).segments_uploaded.get(), 4);
    let playlist = store
        .get(&format!("{prefix}index.m3u8"))
        .await
        .expect("get")
        .expect("playlist");
    insta::assert_snapshot!(String::from_utf8_lossy(&playlist), @r#"
    #EXTM3U
    #EXT-X-VERSION:7
    #EXT-X-TARGETDURATION:2
    #EXT-X-PLAYLIST-TYPE:VOD
    #EXT-X-MAP:URI="init-1.mp4"
    #EXTINF:2,
    0.m4s
    #EXTINF:2,
    1.m4s
    #EXT-X-MAP:URI="init-2.mp4"
    #EXT-X-DISCONTINUITY
    #EXTINF:2,
    2.m4s
    #EXTINF:2,
    3.m4s
    #EXT-X-ENDLIST
    "#);
    assert_eq!(
        entry(&*catalog, "s1").await.status,
        RecordingStatus::Complete
    );
}

#[tokio::test]
async fn a_killed_recorder_recovers_a_cmaf_session_with_its_inits() {
    let (mut s3, store, dir, catalog) = s3_down().await;
    let spool = dir.path().join("spool");
    let first = Recorder::start(fast_config(&spool), store.clone(), catalog.clone())
        .await
        .expect("start");
    first.record(started("s1", &["source", "360p"]));
    for r in ["source", "360p"] {
        first.record(cmaf("s1", r, 0, 1, false));
        first.record(cmaf("s1", r, 1, 2, true));
    }
    wait_until("4 segments spooled", || {
        first.metrics().room(&lobby()).segments_spooled.get() == 4
    })
    .await;
    drop(first);
    // A crash between writing an init and naming it in the manifest leaves a stray file.
    let stray = spool.join("s1/source/init-9.mp4");
    std::fs::write(&stray, b"never needed").expect("stray init");

    s3.restart().await;
    let second = Recorder::start(fast_config(&spool), store.clone(), catalog.clone())
        .await
        .expect("restart");
    flush(&second).await;

    assert_eq!(
        entry(&*catalog, "s1").await.status,
        RecordingStatus::Interrupted
    );
    for r in ["source", "360p"] {
        let prefix = format!("rooms/shows/lobby/s1/{r}/");
        for init in [1, 2] {
            assert_eq!(
                store
                    .get(&format!("{prefix}init-{init}.mp4"))
                    .await
                    .expect("get"),
                Some(init_body(r, init)),
                "{r} init {init}"
            );
        }
        for seq in [0, 1] {
            assert_eq!(
                store.get(&format!("{prefix}{seq}.m4s")).await.expect("get"),
                Some(body(r, seq))
            );
        }
        let text = store
            .get(&format!("{prefix}index.m3u8"))
            .await
            .expect("get")
            .expect("playlist");
        let parsed = m3u8_rs::parse_media_playlist_res(&text).expect("playlist");
        let listed: Vec<_> = parsed
            .segments
            .iter()
            .map(|s| (s.map.as_ref().map(|m| m.uri.clone()), s.uri.clone()))
            .collect();
        assert_eq!(
            listed,
            [
                (Some("init-1.mp4".to_owned()), "0.m4s".to_owned()),
                (Some("init-2.mp4".to_owned()), "1.m4s".to_owned()),
            ]
        );
        assert!(parsed.segments[1].discontinuity);
    }
    assert!(
        !store
            .list("rooms/shows/lobby/s1/")
            .await
            .expect("list")
            .iter()
            .any(|k| k.ends_with("init-9.mp4"))
    );
    assert!(!spool.join("s1").exists(), "spool emptied");
}

#[tokio::test]
async fn an_orphaned_cmaf_session_is_finalised_with_its_init_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("rec")).expect("store"));
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let mut live = crate::catalog::suite::recording(ROOM, "s1", 1_000, RecordingStatus::Live);
    live.prefix = "rooms/shows/lobby/s1/".into();
    catalog.upsert(&live).await.expect("upsert");
    for (key, body) in [
        ("source/init-1.mp4", init_body("source", 1)),
        ("source/0.m4s", body("source", 0)),
        ("source/1.m4s", body("source", 1)),
        // A rendition whose init never reached the store plays nowhere: left out.
        ("360p/0.m4s", body("360p", 0)),
        ("source/init-x.mp4", Bytes::from_static(b"not ours")),
    ] {
        store
            .put(&format!("{}{key}", live.prefix), body, "x")
            .await
            .expect("put");
    }
    let rec = start_in(dir.path(), store.clone(), catalog.clone()).await;
    assert_eq!(
        rec.finalise_orphans(ROOM, Duration::from_secs(2))
            .await
            .expect("finalise"),
        1
    );
    let text = store
        .get("rooms/shows/lobby/s1/source/index.m3u8")
        .await
        .expect("get")
        .expect("playlist");
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("#EXT-X-VERSION:7"), "{text}");
    assert_eq!(
        text.matches("#EXT-X-MAP:URI=\"init-1.mp4\"").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("0.m4s\n") && text.contains("1.m4s\n"),
        "{text}"
    );
    assert!(
        store
            .get("rooms/shows/lobby/s1/360p/index.m3u8")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        entry(&*catalog, "s1").await.status,
        RecordingStatus::Interrupted
    );
}
