//! Counters of one replica, served as `/stats` JSON and in `GET /metrics`.
//! They are prometheus-client counters (a relaxed atomic behind an `Arc`):
//! each is an independent tally, read only for reporting.
//!
//! | family | type | meaning |
//! |---|---|---|
//! | `app_requests_total` | counter | requests answered by this replica |
//! | `app_cache_hits_total` | counter | page reads answered from the cache service |
//! | `app_cache_misses_total` | counter | page reads the cache did not have (read from the database, then filled) |
//! | `app_cache_errors_total` | counter | cache calls that failed (the read went to the database) |
//! | `app_invalidation_failures_total` | counter | invalidations that still failed after their retries |
//! | `app_job_runs_total` | counter | periods in which this replica ran the publishing job |
//! | `app_job_published_total` | counter | posts this replica's job runs published |
//!
//! The cache hit ratio is a query, not a series (a ratio of two rates
//! cannot be summed across replicas; its parts can):
//! `sum(rate(app_cache_hits_total[5m])) / (sum(rate(app_cache_hits_total[5m])) + sum(rate(app_cache_misses_total[5m])))`.

use sluice_service_common::metrics::prometheus_client::metrics::counter::Counter;
use sluice_service_common::metrics::prometheus_client::registry::Registry;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: Counter,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    /// Cache calls that failed (the read then went to the database).
    pub cache_errors: Counter,
    /// Invalidations that still failed after their retries.
    pub invalidation_failures: Counter,
    /// Periods in which this replica ran the publishing job.
    pub job_runs: Counter,
    /// Posts this replica's job runs published.
    pub job_published: Counter,
}

impl Stats {
    pub fn bump(counter: &Counter) {
        counter.inc();
    }

    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    /// Registers every counter (see the module doc) under `app_`.
    pub fn register(&self, registry: &mut Registry) {
        let app = registry.sub_registry_with_prefix("app");
        let counters = [
            (
                "requests",
                "Requests answered by this replica",
                &self.requests,
            ),
            (
                "cache_hits",
                "Page reads answered from the cache service",
                &self.cache_hits,
            ),
            (
                "cache_misses",
                "Page reads the cache did not have (read from the database, then filled)",
                &self.cache_misses,
            ),
            (
                "cache_errors",
                "Cache calls that failed (the read went to the database)",
                &self.cache_errors,
            ),
            (
                "invalidation_failures",
                "Invalidations that still failed after their retries",
                &self.invalidation_failures,
            ),
            (
                "job_runs",
                "Periods in which this replica ran the publishing job",
                &self.job_runs,
            ),
            (
                "job_published",
                "Posts this replica's job runs published",
                &self.job_published,
            ),
        ];
        for (name, help, counter) in counters {
            app.register(name, help, counter.clone());
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests.get(),
            "cache_hits": self.cache_hits.get(),
            "cache_misses": self.cache_misses.get(),
            "cache_errors": self.cache_errors.get(),
            "invalidation_failures": self.invalidation_failures.get(),
            "job_runs": self.job_runs.get(),
            "job_published": self.job_published.get(),
        })
    }
}
