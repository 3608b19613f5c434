//! Stream keys never reach the logs, not even at debug level (str0m's `tests/pii.rs` habit).

mod common;

use std::time::Duration;

use common::*;
use roomcast_recorder::testing::LogCapture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_never_reach_the_logs() {
    if !media_tools_available() {
        return;
    }
    let captured = LogCapture::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut room = RoomSpec::new("lobby", "right-key-4f9d2");
    room.renditions = vec![source()];
    let srv = TestServer::start(vec![room]).await;
    let wrong = Publisher::default().spawn(&srv.url("wrong-key-8c1e7"));
    assert!(!wait_exit(wrong, Duration::from_secs(60)).await);
    let right = Publisher {
        seconds: 2,
        ..Default::default()
    }
    .spawn(&srv.url("right-key-4f9d2"));
    assert!(wait_exit(right, Duration::from_secs(60)).await);
    srv.stop().await;

    let logs = captured.text();
    assert!(logs.contains("publish refused"), "{logs}");
    assert!(logs.contains("publish accepted"), "{logs}");
    for secret in ["right-key-4f9d2", "wrong-key-8c1e7"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
