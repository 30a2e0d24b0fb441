//! `GET /metrics` of the cache: the request histogram every service has
//! ([`sluice_service_common::metrics`]), this replica's hits and misses
//! (counted on the request path), and the store's own numbers (entries,
//! bytes, evictions, expirations), read from the store at scrape time.
//!
//! | family | type | meaning |
//! |---|---|---|
//! | `cache_hits_total` | counter | reads answered from the store (this replica) |
//! | `cache_misses_total` | counter | reads of a key the store did not have (this replica) |
//! | `cache_entries` | gauge | live entries in the store |
//! | `cache_bytes` | gauge | bytes the store holds (memory: what the bound measures) |
//! | `cache_evictions_total` | counter | entries removed to stay under the memory bound |
//! | `cache_expirations_total` | counter | entries removed because their TTL passed |
//! | `cache_store_up` | gauge | 1 if the store answered this scrape, else 0 |

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use sluice_service_common::HttpMetrics;
use sluice_service_common::metrics::prometheus_client::metrics::counter::Counter;
use sluice_service_common::metrics::prometheus_client::metrics::gauge::Gauge;
use sluice_service_common::metrics::prometheus_client::registry::Registry;

use crate::store::Usage;

/// The cache's routes, the `route` label of its request histogram.
pub const ROUTES: [&str; 7] = [
    "entry",
    "invalidate",
    "purge",
    "stats",
    "ping",
    "ready",
    "metrics",
];

/// The index in [`ROUTES`] of a path (past the end: unmatched).
pub fn route(path: &str) -> usize {
    match path {
        "/" => 0,
        "/invalidate" => 1,
        "/purge" => 2,
        "/stats" => 3,
        "/ping" => 4,
        "/ready" => 5,
        "/metrics" => 6,
        _ => ROUTES.len(),
    }
}

/// Every family of the cache, registered once at startup.
#[derive(Debug)]
pub struct CacheMetrics {
    /// Filled here and never changed after: encoding only reads it.
    registry: Registry,
    pub http: Arc<HttpMetrics>,
    /// Relaxed atomics (prometheus-client's): independent tallies.
    pub hits: Counter,
    pub misses: Counter,
    entries: Gauge,
    bytes: Gauge,
    /// The store's own counts, copied in at scrape time (`fetch_max`, so
    /// two concurrent scrapes cannot move them backwards).
    evictions: Counter<u64, AtomicU64>,
    expirations: Counter<u64, AtomicU64>,
    store_up: Gauge<i64, AtomicI64>,
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry, &ROUTES);
        let metrics = CacheMetrics {
            registry: Registry::default(),
            http,
            hits: Counter::default(),
            misses: Counter::default(),
            entries: Gauge::default(),
            bytes: Gauge::default(),
            evictions: Counter::default(),
            expirations: Counter::default(),
            store_up: Gauge::default(),
        };
        let cache = registry.sub_registry_with_prefix("cache");
        let m = &metrics;
        cache.register(
            "hits",
            "Reads answered from the store by this replica",
            m.hits.clone(),
        );
        cache.register(
            "misses",
            "Reads of a key the store did not have, by this replica",
            m.misses.clone(),
        );
        cache.register("entries", "Live entries in the store", m.entries.clone());
        cache.register("bytes", "Bytes the store holds", m.bytes.clone());
        cache.register(
            "evictions",
            "Entries the store removed to stay under its memory bound",
            m.evictions.clone(),
        );
        cache.register(
            "expirations",
            "Entries the store removed because their TTL had passed",
            m.expirations.clone(),
        );
        cache.register(
            "store_up",
            "1 if the store answered the last scrape, else 0",
            m.store_up.clone(),
        );
        CacheMetrics {
            registry,
            ..metrics
        }
    }

    /// Copies the store's numbers in (`None`: the store did not answer;
    /// the last values stay) and encodes every family.
    pub fn scrape<B: From<String>>(&self, usage: Option<Usage>) -> http::Response<B> {
        match usage {
            Some(usage) => {
                self.store_up.set(1);
                self.entries.set(saturate(usage.entries));
                self.bytes.set(saturate(usage.bytes));
                self.evictions
                    .inner()
                    .fetch_max(usage.evictions, Ordering::Relaxed);
                self.expirations
                    .inner()
                    .fetch_max(usage.expirations, Ordering::Relaxed);
            }
            None => {
                self.store_up.set(0);
            }
        }
        sluice_service_common::metrics::response(&self.registry)
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
