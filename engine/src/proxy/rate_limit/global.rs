//! Global rate limits: replicas share one bucket per key in Redis, synced
//! off the request path.
//!
//! A request never waits on Redis: it takes its token from the local bucket
//! as any limit does. Every `sync_interval` a task sends, for each key used
//! lately, the tokens this replica took since the last sync, in one
//! pipelined round trip of a Lua script that refills the shared bucket by
//! Redis's clock, subtracts them, and returns its level; the local bucket is
//! then set to that level, less what was taken while the answer was on its
//! way. Others' consumption so becomes a local debt within one interval.
//!
//! # Accuracy
//! Between two syncs each replica admits from its own view, so N replicas
//! can together pass up to N × (the shared level + rate × interval) before
//! the next sync charges it back as debt; over longer spans the shared rate
//! holds. A key new to a replica starts with a full local burst (no request
//! waits to ask Redis), so a key new everywhere may pass N × burst in its
//! first interval.
//!
//! # Redis unreachable
//! A sync that fails or takes longer than `timeout` is counted
//! ([`Sync::failures`], [`Sync::fallbacks`] per outage, the last error kept
//! for `GET /rate_limits`) and logged (once when Redis goes away, once when
//! it is back); the limits go on as local limits, each replica enforcing the
//! full rate on its own, and the consumption of the failed interval is not
//! sent. Requests are never blocked or failed because of Redis.

use super::{Limit, RateLimits};
use crate::config::GlobalLimits;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Keys idle longer than this are not synced: their buckets refill locally
/// and catch up on the shared level at their next use's sync.
const ACTIVE: Duration = Duration::from_secs(10);
/// The most a level read from Redis may say either way (tokens, or debt):
/// far past any burst (at most 2^24) and any debt a sync can run up, and
/// small enough that the wait for a token is a finite `Duration`.
const MAX_DEBT: f64 = 1e12;

/// The shared bucket: refill by Redis's clock, take `ARGV[3]`, store, and
/// return the level as text (a Lua number reply would be truncated to an
/// integer). A debt is kept, not clamped: it is what others took. The key
/// expires once it would have refilled.
const SCRIPT: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local taken = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - taken
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(tokens)
";

/// The sync task's state and counters, shared with whoever reports them
/// (the admin API's `GET /rate_limits`).
#[derive(Debug, Default)]
pub struct Sync {
    /// Syncs that failed or timed out (Redis unreachable).
    ///
    /// # Concurrency
    /// Written by the one sync task, read by anyone: `Relaxed`, a counter
    /// that orders nothing.
    pub failures: AtomicU64,
    /// Syncs that succeeded (same ordering).
    pub successes: AtomicU64,
    /// Outages: times a sync failed after the previous one had not (the
    /// first sync counts as following a good one). Same ordering.
    pub fallbacks: AtomicU64,
    /// Whether the last sync failed, so the limits run locally now.
    ///
    /// # Concurrency
    /// Written by the sync task after the counters, read by the admin API:
    /// `Relaxed`, a report may pair it with counters one sync older.
    pub fallback: AtomicBool,
    /// The last failure's text and time.
    ///
    /// # Concurrency
    /// A `parking_lot::Mutex` written by the sync task on a failure and
    /// read by the admin API, each held for a copy: never across `.await`.
    last_error: Mutex<Option<SyncError>>,
}

/// A failed sync, as the admin API reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SyncError {
    pub error: String,
    pub at_unix_ms: u64,
}

/// Where the sync stands, for the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// No sync has finished yet.
    Starting,
    /// The last sync succeeded: the limits are shared.
    Connected,
    /// The last sync failed: each replica enforces its limits alone.
    FallingBackToLocal,
}

impl Sync {
    pub fn state(&self) -> SyncState {
        if self.fallback.load(Ordering::Relaxed) {
            SyncState::FallingBackToLocal
        } else if self.successes.load(Ordering::Relaxed) > 0 {
            SyncState::Connected
        } else {
            SyncState::Starting
        }
    }

    pub fn last_error(&self) -> Option<SyncError> {
        self.last_error.lock().clone()
    }

    /// Records one sync's outcome; whether it changed the state (Redis
    /// went away or came back).
    fn record(&self, result: Result<(), String>) -> bool {
        let was_down = self.fallback.load(Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.successes.fetch_add(1, Ordering::Relaxed);
                self.fallback.store(false, Ordering::Relaxed);
                was_down
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = Some(SyncError {
                    error,
                    at_unix_ms: crate::upstream::member::unix_ms(SystemTime::now()),
                });
                if !was_down {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                self.fallback.store(true, Ordering::Relaxed);
                !was_down
            }
        }
    }
}

/// Starts the sync task for the global limits of `limits` on the current
/// runtime; it ends when `limits` is dropped (a reload replaced it).
pub fn spawn(limits: &Arc<RateLimits>, config: &GlobalLimits) {
    if !limits.limits.iter().any(|l| l.config.global) {
        return;
    }
    let client = match redis::Client::open(config.redis.as_str()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "global rate limits: bad Redis URL; limits stay local");
            return;
        }
    };
    let weak = Arc::downgrade(limits);
    let config = config.clone();
    tokio::spawn(run(weak, client, config));
}

async fn run(limits: Weak<RateLimits>, client: redis::Client, config: GlobalLimits) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let script = redis::Script::new(SCRIPT);
    let mut tick = tokio::time::interval(config.sync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        let result = match tokio::time::timeout(
            config.timeout,
            sync_once(&limits, &client, &mut conn, &script),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", config.timeout)),
        };
        if result.is_err() {
            // A fresh connection (and script load) on the next tick.
            conn = None;
        }
        let error = result.as_ref().err().cloned();
        if limits.sync.record(result) {
            match error {
                None => tracing::info!("global rate limits: Redis answers again; counts shared"),
                Some(error) => tracing::warn!(
                    %error,
                    "global rate limits: Redis unreachable; falling back to local limits"
                ),
            }
        }
    }
}

/// One key sent in a sync: which limit, and its table key.
struct Report {
    limit: usize,
    key: u64,
}

async fn sync_once(
    limits: &RateLimits,
    client: &redis::Client,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    script: &redis::Script,
) -> redis::RedisResult<()> {
    let c = match conn {
        Some(c) => c,
        None => {
            let mut c = client.get_multiplexed_async_connection().await?;
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(SCRIPT)
                .query_async::<String>(&mut c)
                .await?;
            conn.insert(c)
        }
    };
    let now = Instant::now();
    let mut reports = Vec::new();
    let mut pipe = redis::pipe();
    for (i, l) in limits.limits.iter().enumerate() {
        if !l.config.global {
            continue;
        }
        collect(i, l, now, &mut reports, &mut pipe, script);
    }
    if reports.is_empty() {
        return Ok(());
    }
    let levels: Vec<String> = pipe.query_async(c).await?;
    let now = Instant::now();
    for (r, level) in reports.iter().zip(levels) {
        // Whatever Redis says ("-inf", "nan", 1e308) stays a level a
        // bucket can hold: no wait computed from it may overflow.
        let level = match level.parse::<f64>() {
            Ok(l) if l.is_finite() => l.clamp(-MAX_DEBT, MAX_DEBT),
            _ => continue,
        };
        limits.limits[r.limit].table.with(r.key, |e| {
            // What was taken since this report was made is still local.
            e.bucket.set(level - f64::from(e.taken), now);
        });
    }
    Ok(())
}

/// Adds every recently used key of `l` to the pipeline, moving its
/// `taken` into the report.
fn collect(
    i: usize,
    l: &Limit,
    now: Instant,
    reports: &mut Vec<Report>,
    pipe: &mut redis::Pipeline,
    script: &redis::Script,
) {
    let c = &l.config;
    l.table.for_each(|key, e| {
        if e.taken == 0 && now.saturating_duration_since(e.seen) > ACTIVE {
            return;
        }
        let Some(name) = &e.name else {
            return;
        };
        let mut redis_key = format!("sluice:rl:{}:", c.name).into_bytes();
        redis_key.extend_from_slice(name);
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(redis_key)
            .arg(c.rate)
            .arg(c.burst)
            .arg(e.taken);
        reports.push(Report { limit: i, key });
        e.taken = 0;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_one_fallback_and_keeps_its_last_error() {
        let s = Sync::default();
        assert_eq!(s.state(), SyncState::Starting);
        // Redis down from the start: the first failure is an outage.
        assert!(s.record(Err("refused".into())));
        assert!(!s.record(Err("still refused".into())));
        assert_eq!(s.state(), SyncState::FallingBackToLocal);
        assert_eq!(s.fallbacks.load(Ordering::Relaxed), 1);
        assert_eq!(s.failures.load(Ordering::Relaxed), 2);
        assert_eq!(s.last_error().expect("kept").error, "still refused");
        // Back: one change, then quiet.
        assert!(s.record(Ok(())));
        assert!(!s.record(Ok(())));
        assert_eq!(s.state(), SyncState::Connected);
        // A second outage is counted as such; the last error stays visible.
        assert!(s.record(Err("timeout".into())));
        assert_eq!(s.fallbacks.load(Ordering::Relaxed), 2);
        assert_eq!(s.successes.load(Ordering::Relaxed), 2);
    }
}
