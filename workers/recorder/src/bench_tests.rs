//! The recorder benchmark (ignored by default; `scripts/bench-recorder.sh` runs it):
//!
//! 1. Upload lag, p50/p99/max, from segment close (`record()`) to the object stored, over a
//!    real-time session (`BENCH_SESSION_SECS`, default 120) of `BENCH_SEGMENT_SECS`-second
//!    segments (default 2) in three renditions (~1.5 MB, 700 kB, 200 kB a segment: 6, 2.8 and
//!    0.8 Mbit/s) against the in-process s3s server on loopback.
//! 2. Spool catch-up after an outage: S3 stopped for `BENCH_OUTAGE_SECS` (default 60) while the
//!    session goes on, then restored; reports how fast the backlog drains.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;

use crate::{
    DynStore, RecordEvent, Recorder, catalog::embedded::EmbeddedCatalog, config::RecorderConfig,
    testing::S3TestServer,
};

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const RENDITIONS: [(&str, usize); 3] =
    [("source", 1_500_000), ("720p", 700_000), ("360p", 200_000)];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn emit(rec: &Recorder, seq: u64, segment_secs: u64, bodies: &[Bytes]) {
    for ((name, _), body) in RENDITIONS.iter().zip(bodies) {
        rec.record(RecordEvent::SegmentClosed {
            session_id: "bench".into(),
            room: "bench/room".into(),
            rendition: (*name).into(),
            seq,
            duration: Duration::from_secs(segment_secs),
            discontinuity: false,
            program_date_time: SystemTime::now(),
            bytes: body.clone(),
            init: None,
            attributes: Default::default(),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-recorder.sh"]
async fn bench_upload_lag_and_spool_catch_up() {
    let session_secs = env_secs("BENCH_SESSION_SECS", 120);
    let outage_secs = env_secs("BENCH_OUTAGE_SECS", 60);
    let segment_secs = env_secs("BENCH_SEGMENT_SECS", 2).max(1);
    let mut s3 = S3TestServer::start().await;
    let store: DynStore = Arc::new(s3.store().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Arc::new(EmbeddedCatalog::open(dir.path()).expect("catalog"));
    let cfg = RecorderConfig {
        spool_size_bytes: 4 * 1024 * 1024 * 1024,
        ..RecorderConfig::new(dir.path().join("spool"))
    };
    let rec = Recorder::start(cfg, store, catalog).await.expect("start");
    let bench_room = rec
        .metrics()
        .room(&crate::RoomIdentity::new("bench", "room"));
    let mut uploads = rec.subscribe_uploads();
    let bodies: Vec<Bytes> = RENDITIONS
        .iter()
        .map(|(_, size)| Bytes::from((0..*size).map(|i| (i % 251) as u8).collect::<Vec<u8>>()))
        .collect();
    rec.record(RecordEvent::SessionStarted {
        session_id: "bench".into(),
        room: "bench/room".into(),
        renditions: RENDITIONS.iter().map(|(n, _)| (*n).to_owned()).collect(),
        started_at: SystemTime::now(),
    });

    // Phase 1: upload lag during a live session.
    let segments = session_secs / segment_secs;
    let mut tick = tokio::time::interval(Duration::from_secs(segment_secs));
    let mut lags = Vec::new();
    let mut seq = 0;
    for _ in 0..segments {
        tick.tick().await;
        emit(&rec, seq, segment_secs, &bodies);
        seq += 1;
        while let Ok(u) = uploads.try_recv() {
            lags.push((u.lag, u.key));
        }
    }
    rec.flush().await;
    while let Ok(u) = uploads.try_recv() {
        lags.push((u.lag, u.key));
    }
    lags.sort();
    let worst: Vec<String> = lags
        .iter()
        .rev()
        .take(5)
        .map(|(lag, key)| format!("{}={lag:.2?}", key.trim_start_matches("bench/room/bench/")))
        .collect();
    // Without the first segment of each rendition (cold start: first connection, client set-up).
    let mut warm: Vec<Duration> = lags
        .iter()
        .filter(|(_, k)| !k.ends_with("/0.ts"))
        .map(|(l, _)| *l)
        .collect();
    warm.sort();
    let lags: Vec<Duration> = lags.into_iter().map(|(l, _)| l).collect();
    let bytes_per_seg: usize = RENDITIONS.iter().map(|(_, s)| s).sum();
    println!(
        "upload lag over a {session_secs} s session, {segments} x {} renditions of {segment_secs} s ({:.1} Mbit/s): n={} p50={:?} p99={:?} max={:?} (goal p99 < 1 s)",
        RENDITIONS.len(),
        bytes_per_seg as f64 * 8.0 / segment_secs as f64 / 1e6,
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default(),
    );
    println!(
        "  without each rendition's first segment: p50={:?} p99={:?}; slowest: {}",
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        worst.join(" "),
    );

    // Phase 2: an outage, then catch-up.
    s3.stop().await;
    let outage_segments = outage_secs / segment_secs;
    for _ in 0..outage_segments {
        tick.tick().await;
        emit(&rec, seq, segment_secs, &bodies);
        seq += 1;
    }
    // Let the writer spool the last ones.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let backlog = rec.spool_bytes();
    let uploaded_before = bench_room.segments_uploaded.get();
    s3.restart().await;
    let restored = Instant::now();
    rec.flush().await;
    let took = restored.elapsed();
    let drained = bench_room.segments_uploaded.get() - uploaded_before;
    println!(
        "catch-up after a {outage_secs} s outage: {drained} segments / {:.1} MiB drained in {:.2?} = {:.1} MiB/s, {:.1} segments/s ({:.0}x real time); retries during the outage: {}",
        backlog as f64 / 1048576.0,
        took,
        backlog as f64 / 1048576.0 / took.as_secs_f64().max(1e-3),
        drained as f64 / took.as_secs_f64().max(1e-3),
        outage_secs as f64 / took.as_secs_f64().max(1e-3),
        bench_room.upload_retries.get(),
    );
    assert_eq!(bench_room.dropped_total(), 0);
    assert_eq!(rec.spool_bytes(), 0);
}
