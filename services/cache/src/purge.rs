//! Background sweep of expired entries.
//!
//! Reads never serve an expired entry whatever this task does; it exists to
//! give the memory back promptly. It removes only entries past their
//! deadline (see [`Store::purge_expired`]) and stops when the server does.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::store::Store;

/// Spawns the sweep; it ends when `stop` turns true (or its sender is dropped).
pub fn spawn<S: Store>(
    store: Arc<S>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // After a stall, sweep once and carry on; no burst of catch-up sweeps.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                _ = ticks.tick() => {}
            }
            match store.purge_expired().await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "purged expired entries"),
                Err(error) => {
                    tracing::warn!(error = &error as &dyn std::error::Error, "purge failed")
                }
            }
        }
    })
}
