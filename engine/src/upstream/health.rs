//! Active health checks: one task per group probes every member that is not
//! draining with `GET <path>` on a fresh connection, off the request path.
//! At most [`MAX_CONCURRENT_PROBES`] probes of a group are open at once.
//! Results go through [`Group::record_check`]: backends that change state
//! queue one snapshot rebuild (`upstream::rotation`), not one each. The same
//! task returns passively ejected backends when their period is over.
//!
//! # Concurrency
//! The task holds its group weakly between rounds, so a group dropped by a
//! reload ends its task at the next round. During a round it holds the group
//! across the probes' awaits, but never the member lock: each result is one
//! synchronous [`Group::record_check`] (lock, update, unlock).

use super::Group;
use crate::addr::BackendAddr;
use crate::config::HealthCheck;
use futures_util::StreamExt;
use http::{Request, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often ejections are revisited in groups without active checks.
const READMIT_TICK: Duration = Duration::from_secs(1);
/// Probes of one group in flight at once: each holds a socket, and a group
/// may have `MAX_GROUP_BACKENDS` members (all at once ran the process out of
/// file descriptors, starving the listeners).
const MAX_CONCURRENT_PROBES: usize = 256;

/// Runs until the group is dropped (the task holds only a weak reference).
pub async fn run(group: std::sync::Weak<Group>) {
    loop {
        let Some(g) = group.upgrade() else { return };
        let interval = g
            .health
            .as_ref()
            .map_or(READMIT_TICK, |h| h.interval.min(READMIT_TICK * 5));
        g.readmit_expired(Instant::now());
        if let Some(hc) = g.health.clone() {
            let targets = g.probe_targets();
            let probes = targets.into_iter().map(|addr| {
                let (g, hc) = (g.clone(), hc.clone());
                async move {
                    let (ok, detail) = probe(addr, &hc, g.tls.as_ref()).await;
                    g.record_check(addr, ok, detail);
                }
            });
            futures_util::stream::iter(probes)
                .for_each_concurrent(MAX_CONCURRENT_PROBES, |probe| probe)
                .await;
        }
        drop(g);
        tokio::time::sleep(interval).await;
    }
}

/// Spawns the checker for `group` on the current runtime.
pub fn spawn(group: &Arc<Group>) {
    tokio::spawn(run(Arc::downgrade(group)));
}

/// One check: healthy when the status is expected (any 2xx/3xx by default).
pub async fn probe(
    addr: BackendAddr,
    hc: &HealthCheck,
    tls: Option<&super::connect::TlsConnector>,
) -> (bool, String) {
    let check = async {
        let io = super::connect::connect(addr, tls, hc.timeout)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(hc.path.as_str())
            .header(header::HOST, addr.to_string())
            .header(header::USER_AGENT, "sluice-health")
            .header(header::CONNECTION, "close")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(resp.status().as_u16())
    };
    match tokio::time::timeout(hc.timeout, check).await {
        Err(_) => (
            false,
            format!("no answer within {}ms", hc.timeout.as_millis()),
        ),
        Ok(Err(e)) => (false, e),
        Ok(Ok(status)) => {
            let ok = if hc.expect.is_empty() {
                (200..400).contains(&status)
            } else {
                hc.expect.contains(&status)
            };
            (ok, format!("status {status}"))
        }
    }
}
