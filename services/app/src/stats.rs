//! Counters of one replica, served as `/stats` JSON. Relaxed atomics: each
//! is an independent tally, read only for reporting.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Cache calls that failed (the read then went to the database).
    pub cache_errors: AtomicU64,
    /// Invalidations that still failed after their retries.
    pub invalidation_failures: AtomicU64,
    /// Periods in which this replica ran the publishing job.
    pub job_runs: AtomicU64,
    /// Posts this replica's job runs published.
    pub job_published: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": get(&self.requests),
            "cache_hits": get(&self.cache_hits),
            "cache_misses": get(&self.cache_misses),
            "cache_errors": get(&self.cache_errors),
            "invalidation_failures": get(&self.invalidation_failures),
            "job_runs": get(&self.job_runs),
            "job_published": get(&self.job_published),
        })
    }
}
