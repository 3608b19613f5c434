//! Stream keys never reach the logs, not even at debug level (str0m's `tests/pii.rs` habit).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_never_reach_the_logs() {
    if !media_tools_available() {
        return;
    }
    let captured = Captured::default();
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

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(logs.contains("publish refused"), "{logs}");
    assert!(logs.contains("publish accepted"), "{logs}");
    for secret in ["right-key-4f9d2", "wrong-key-8c1e7"] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}
