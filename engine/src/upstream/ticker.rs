//! The clock of a group's backend state machines: one task per group calls
//! [`Group::tick`] every [`Group::tick_interval`] (cool-downs that end,
//! error windows, slow-start steps). The tick only takes the member lock
//! and queues a rebuild; it never blocks a worker.
//!
//! # Concurrency
//! Holds its group weakly between ticks, so a group dropped by a reload
//! ends its task at the next tick.

use super::Group;
use std::sync::{Arc, Weak};
use tokio::time::Instant;

/// Runs until the group is dropped.
pub async fn run(group: Weak<Group>) {
    loop {
        let interval = {
            let Some(g) = group.upgrade() else { return };
            g.tick(Instant::now());
            g.tick_interval()
        };
        tokio::time::sleep(interval).await;
    }
}

/// Spawns the ticker for `group` on the current runtime.
pub fn spawn(group: &Arc<Group>) {
    tokio::spawn(run(Arc::downgrade(group)));
}
