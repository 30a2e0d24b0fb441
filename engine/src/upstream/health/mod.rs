//! Active health checks: one task per group probes the members a check
//! applies to ([`Group::probe_targets`]: all of them under `[health]`, the
//! registered ones under the default heartbeat), off the request path, in
//! the group's own protocol ([`probe`]). At most [`MAX_CONCURRENT_PROBES`]
//! probes of a group are open at once. Results go through
//! [`Group::record_check`]: backends that change state queue one snapshot
//! rebuild (`upstream::rotation`), not one each. The same task returns
//! passively ejected backends when their period is over.
//!
//! # Concurrency
//! The task holds its group weakly between rounds, so a group dropped by a
//! reload ends its task at the next round. During a round it holds the group
//! across the probes' awaits, but never the member lock: each result is one
//! synchronous [`Group::record_check`] (lock, update, unlock).

mod probe;

pub use probe::probe;

use super::Group;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often ejections are revisited, checks or not.
const READMIT_TICK: Duration = Duration::from_secs(1);
/// Probes of one group in flight at once: each holds a socket, and a group
/// may have `MAX_GROUP_BACKENDS` members (all at once ran the process out of
/// file descriptors, starving the listeners).
const MAX_CONCURRENT_PROBES: usize = 256;

/// Runs until the group is dropped (the task holds only a weak reference).
/// Probe rounds start `interval` apart; between them the task wakes every
/// [`READMIT_TICK`] to return ejected backends.
pub async fn run(group: std::sync::Weak<Group>) {
    let mut next_round = Instant::now();
    loop {
        let Some(g) = group.upgrade() else { return };
        let now = Instant::now();
        g.readmit_expired(now);
        if let Some(hc) = g.active_check().cloned()
            && now >= next_round
        {
            next_round = now + hc.interval;
            let targets = g.probe_targets();
            let probes = targets.into_iter().map(|addr| {
                let (g, hc) = (g.clone(), &hc);
                async move {
                    let (ok, detail) =
                        probe(addr, hc, g.protocol, g.tls.as_ref(), g.proxy_protocol).await;
                    g.record_check(addr, ok, detail);
                }
            });
            futures_util::stream::iter(probes)
                .for_each_concurrent(MAX_CONCURRENT_PROBES, |probe| probe)
                .await;
        }
        let wake = if g.active_check().is_some() {
            next_round.min(Instant::now() + READMIT_TICK)
        } else {
            Instant::now() + READMIT_TICK
        };
        drop(g);
        tokio::time::sleep_until(wake).await;
    }
}

/// Spawns the checker for `group` on the current runtime.
pub fn spawn(group: &Arc<Group>) {
    tokio::spawn(run(Arc::downgrade(group)));
}
