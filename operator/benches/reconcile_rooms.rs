//! Reconcile 1,000 rooms against the mock API server and report the time until all are
//! applied and the process's peak RSS. Goal (issue #3): under 30 s and under 100 MiB.
//!
//!     cargo bench -p roomcast-operator --bench reconcile_rooms [-- ROOMS [CONCURRENCY]]
//!
//! The mock API server runs in the same process (its memory is counted too) and answers
//! every server-side apply like the API server does, so the figure covers the operator's own
//! work: validation, building, serialization, HTTP through `kube::Client`, status.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use roomcast_crds::StreamRoom;
use roomcast_operator::{
    config::OperatorConfig,
    controller::{ChildStores, Context, reconcile},
    fixtures::{Behaviour, MockApi},
    metrics::Metrics,
};

const GOAL_SECONDS: f64 = 30.0;
const GOAL_RSS_MIB: f64 = 100.0;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn room(i: usize) -> StreamRoom {
    let yaml = format!(
        "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: room-{i}, namespace: bench-{ns}, uid: 00000000-0000-4000-8000-{i:012}, generation: 1}}\nspec:\n  chat: {{replicas: 2}}\n  playback: {{host: live.example.com, tlsSecretRef: {{name: live-tls}}}}\n",
        ns = i % 10
    );
    serde_yaml::from_str(&yaml).expect("bench room parses")
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let rooms: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let (client, _mock) = MockApi::start(Behaviour::default(), false);
        let config = OperatorConfig {
            media_image: "roomcast:bench".into(),
            chat_image: "roomcast:bench".into(),
            playback_scheme: "https".into(),
            redis_secret: Some("roomcast-redis".into()),
            ..OperatorConfig::default()
        };
        let metrics = Metrics::default();
        let ctx = Arc::new(Context::new(
            client,
            config,
            metrics.clone(),
            ChildStores::default(),
            Duration::from_secs(600),
        ));
        let rooms: Vec<Arc<StreamRoom>> = (0..rooms).map(|i| Arc::new(room(i))).collect();
        let count = rooms.len();

        let started = Instant::now();
        let failures = stream::iter(rooms)
            .map(|room| reconcile(room, ctx.clone()))
            .buffer_unordered(concurrency)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let rss = peak_rss_mib();

        let text = metrics.encode();
        let applied: f64 = text
            .lines()
            .filter(|l| l.starts_with("roomcast_operator_children_applied_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        println!("rooms reconciled:     {count} (concurrency {concurrency}, failures {failures})");
        println!("children applied:     {applied}");
        println!(
            "time to all applied: {elapsed:.2} s   goal < {GOAL_SECONDS} s   ({:.0} rooms/s)  {}",
            count as f64 / elapsed,
            if elapsed < GOAL_SECONDS {
                "OK"
            } else {
                "MISSED"
            }
        );
        println!(
            "peak RSS:            {rss:.1} MiB  goal < {GOAL_RSS_MIB} MiB  {}",
            if rss < GOAL_RSS_MIB { "OK" } else { "MISSED" }
        );
        if failures > 0 {
            std::process::exit(1);
        }
    });
}
