//! What the operator's `/metrics`, `/healthz` and `/readyz` say; the routes themselves are
//! the shared [`roomcast_runtime::ops::router`].

use std::borrow::Cow;

use roomcast_runtime::ops::OpsState;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The state behind the ops routes.
#[derive(Clone)]
pub struct Ops {
    pub metrics: Metrics,
    /// True once the room cache and every child cache have their first full list.
    pub synced: watch::Receiver<bool>,
    /// True while this replica holds the Lease (always, without leader election).
    pub leading: watch::Receiver<bool>,
}

impl OpsState for Ops {
    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    /// Ready once the caches have synced and, with leader election, this replica leads.
    fn readiness(&self) -> Result<(), Cow<'static, str>> {
        if !*self.leading.borrow() {
            Err("waiting for leadership".into())
        } else if !*self.synced.borrow() {
            Err("caches syncing".into())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_says_what_it_waits_for() {
        let (synced_tx, synced) = watch::channel(false);
        let (leading_tx, leading) = watch::channel(false);
        let ops = Ops {
            metrics: Metrics::default(),
            synced,
            leading,
        };
        assert_eq!(ops.readiness(), Err("waiting for leadership".into()));
        leading_tx.send_replace(true);
        assert_eq!(ops.readiness(), Err("caches syncing".into()));
        synced_tx.send_replace(true);
        assert_eq!(ops.readiness(), Ok(()));
        assert!(ops.metrics().contains("roomcast_operator_reconciles_total"));
    }
}
