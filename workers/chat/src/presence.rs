//! Presence: how many sockets a room has, on this replica and across replicas.
//!
//! The room's presence task publishes a [`Presence`] on a watch channel (see
//! [`crate::ChatHandle::presence`]); [`report_periodically`] forwards this replica's count to a
//! [`PresenceSink`] such as the room-status reporter that writes `status.viewers`.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// Counts of one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// Sockets connected to this replica.
    pub local: u32,
    /// Sockets connected across all replicas (equal to `local` without Redis).
    pub total: u32,
}

/// Where this replica's connection count goes (the Kubernetes room status in a cluster).
#[async_trait]
pub trait PresenceSink: Send + Sync + 'static {
    async fn report(&self, local_connections: u32) -> Result<(), String>;
}

#[async_trait]
impl<T: PresenceSink> PresenceSink for std::sync::Arc<T> {
    async fn report(&self, local_connections: u32) -> Result<(), String> {
        (**self).report(local_connections).await
    }
}

/// Report the local count every `every` (a heartbeat the status side can age out), until the
/// channel closes. Failures are logged and retried on the next tick.
pub async fn report_periodically(
    mut presence: watch::Receiver<Presence>,
    sink: impl PresenceSink,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let local = presence.borrow_and_update().local;
        if let Err(e) = sink.report(local).await {
            tracing::warn!(error = %e, "reporting chat presence failed");
        }
        if presence.has_changed().is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<u32>>>);

    #[async_trait]
    impl PresenceSink for Recorder {
        async fn report(&self, n: u32) -> Result<(), String> {
            self.0.lock().map_err(|e| e.to_string())?.push(n);
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reports_the_local_count_until_the_room_closes() {
        let (tx, rx) = watch::channel(Presence::default());
        let rec = Recorder::default();
        let task = tokio::spawn(report_periodically(rx, rec.clone(), Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send_replace(Presence { local: 3, total: 7 });
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tx);
        tokio::time::sleep(Duration::from_secs(6)).await;
        task.await.expect("task ends when the room closes");
        let seen = rec.0.lock().expect("lock").clone();
        assert_eq!(seen.first(), Some(&0));
        assert!(seen.contains(&3), "{seen:?}");
    }
}
