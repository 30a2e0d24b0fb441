//! `GET /rate_limits`: every `[[rate_limit]]` with the keys it remembers,
//! and how the sync of the global ones with Redis stands (connected or
//! falling back to local limits, its failures, outages and last error), so
//! an operator sees a dead Redis without reading the log.

use crate::config::RateKey;
use crate::proxy::rate_limit::RateLimits;
use crate::proxy::rate_limit::global::{SyncError, SyncState};
use crate::state::State;
use serde::Serialize;
use std::sync::atomic::Ordering;

#[derive(Serialize)]
struct LimitView<'a> {
    name: &'a str,
    key: String,
    rate: f64,
    burst: u32,
    host: Option<&'a str>,
    path: Option<&'a str>,
    /// `key = "client"`: the prefix lengths that name a client's bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4_prefix: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6_prefix: Option<u8>,
    global: bool,
    /// Keys remembered now (at most `max_keys`).
    keys: usize,
    max_keys: usize,
}

#[derive(Serialize)]
struct GlobalView {
    state: SyncState,
    syncs: u64,
    sync_failures: u64,
    /// Outages: each switch from shared to local limits.
    fallbacks: u64,
    last_error: Option<SyncError>,
    sync_interval_ms: u64,
    timeout_ms: u64,
}

/// The answer of `GET /rate_limits`; `global` is `null` without global
/// limits (no sync runs). The Redis URL is not shown: it may hold a password.
pub fn view(state: &State) -> serde_json::Value {
    let rl: &RateLimits = &state.rate_limits;
    let limits: Vec<LimitView<'_>> = rl
        .limits
        .iter()
        .map(|l| {
            let c = &l.config;
            let prefix = match &c.key {
                RateKey::Client(p) => Some(*p),
                _ => None,
            };
            LimitView {
                name: &c.name,
                key: match &c.key {
                    RateKey::Client(_) => "client".to_owned(),
                    RateKey::Route => "route".to_owned(),
                    RateKey::Header(h) => format!("header:{h}"),
                },
                rate: c.rate,
                burst: c.burst,
                host: c.host.as_deref(),
                path: c.path.as_deref(),
                ipv4_prefix: prefix.map(|p| p.v4),
                ipv6_prefix: prefix.map(|p| p.v6),
                global: c.global,
                keys: l.table.len(),
                max_keys: c.max_keys,
            }
        })
        .collect();
    let syncing = state
        .config
        .global_limits
        .as_ref()
        .filter(|_| rl.limits.iter().any(|l| l.config.global));
    let global = syncing.map(|g| GlobalView {
        state: rl.sync.state(),
        syncs: rl.sync.successes.load(Ordering::Relaxed),
        sync_failures: rl.sync.failures.load(Ordering::Relaxed),
        fallbacks: rl.sync.fallbacks.load(Ordering::Relaxed),
        last_error: rl.sync.last_error(),
        sync_interval_ms: g.sync_interval.as_millis() as u64,
        timeout_ms: g.timeout.as_millis() as u64,
    });
    serde_json::json!({ "limits": limits, "global": global })
}
