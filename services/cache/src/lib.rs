//! `sluice-cache`: a TTL key/value cache over HTTP, one of the services the
//! Sluice proxy fronts.
//!
//! The request path, one module per stage:
//!
//! ```text
//! sluice_service_common::serve (accept, per-connection task, graceful drain)
//!   → api (route, respond; the only place errors become statuses)
//!     → parse (key from the query, TTL from Cache-Control)
//!     → store::Store ── memory (moka: byte bound, per-entry TTL, exact deadline)
//!                    └─ redis  (SET … PX: shared by replicas, Redis owns the TTL)
//! purge (background: removes expired entries only)
//! metrics (`GET /metrics`: every request timed by route; store numbers read at scrape time)
//! ```
//!
//! The binary (`main.rs`) only parses flags, binds, and calls [`run`]; tests
//! bind `127.0.0.1:0` and call [`run`] with a shutdown future of their own.
//! See [`api`] for the wire API.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod api;
pub mod config;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod parse;
pub mod purge;
pub mod redis;
pub mod store;

pub use config::{Cli, Config, LogFormat, StoreConfig};
pub use error::{ApiError, Error};
pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use store::{Entry, Key, Store, StoreError, Usage};

/// How long in-flight requests get to finish after shutdown begins.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// Serves the cache on an already-bound `listener` until `shutdown`
/// completes, then stops accepting, finishes in-flight requests and returns.
///
/// `config` must be validated ([`Config::validate`]). Fails only if the store
/// cannot be reached at startup.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    match &config.store {
        StoreConfig::Memory => {
            let store = MemoryStore::new(config.max_bytes);
            serve_with(listener, store, &config, shutdown).await;
        }
        StoreConfig::Redis(url) => {
            let store = RedisStore::connect(url).await?;
            serve_with(listener, store, &config, shutdown).await;
        }
    }
    Ok(())
}

/// The server for one concrete store: monomorphised, no boxed futures.
async fn serve_with<S: Store>(
    listener: TcpListener,
    store: S,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let store = Arc::new(store);
    tracing::info!(
        addr = %listener
            .local_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string()),
        store = store.kind(),
        tls = config.tls.is_some(),
        max_bytes = config.max_bytes,
        max_entry_bytes = config.max_entry_bytes,
        "listening"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let purger = purge::spawn(Arc::clone(&store), config.purge_interval, stop_rx);
    let metrics = metrics::CacheMetrics::new();
    let http = Arc::clone(&metrics.http);
    let api = Arc::new(api::Api::new(store, config, metrics));
    let handler = move |request| {
        let api = Arc::clone(&api);
        async move { api.handle(request).await }
    };
    let handler = sluice_service_common::measured(handler, http, metrics::route);
    let limits = sluice_service_common::Limits {
        grace: DRAIN_GRACE,
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
    };
    let tls = config.tls.clone();
    sluice_service_common::serve_tls(listener, tls, handler, shutdown, limits).await;
    let _ = stop_tx.send(true);
    let _ = purger.await;
    tracing::info!("stopped");
}
