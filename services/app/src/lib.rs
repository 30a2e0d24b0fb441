//! `sluice-app`: a small blog whose replicas keep no state of their own, so
//! any replica can serve any request and replicas can come and go behind the
//! Sluice proxy while traffic flows.
//!
//! ```text
//! proxy ──► serve (accept, drain) ──► api (route, X-Instance-ID, errors → status)
//!             ├─ GET  → pages (cache service, key = path; miss/failure → posts/SQL)
//!             ├─ POST/PUT → sessions (cookie → shared store) → posts/SQL → pages::invalidate → answer
//!             └─ POST /login → sessions (verify, create, Set-Cookie)
//! background: job (lease → claim period → publish due posts), logship (batches → log service)
//! lifecycle:  start: migrate, seed author, serve, register with the proxy (retry, backoff, jitter)
//!             stop:  unregister (proxy drains us) → shutdown delay (/ping 503) → drain own connections → stop job → flush logs
//! ```
//!
//! Shared state lives outside the replica: posts, authors, sessions, the
//! job lease and job runs in SQL ([`db`]: SQLite in WAL mode by default,
//! PostgreSQL with `--database postgres://…`), sessions and the lease
//! optionally in Redis, rendered reads in the cache service.
//!
//! The binary parses flags and calls [`run`]; tests and the demo stack bind
//! `127.0.0.1:0` and call [`run`] with their own shutdown future.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_service_common::HttpMetrics;
use sluice_service_common::metrics::prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod api;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod job;
pub mod lease;
pub mod logship;
pub mod pages;
pub mod posts;
pub mod register;
pub mod seed;
pub mod sessions;
pub mod stats;

pub use config::{AdminToken, Cli, Config, ConfigError, DatabaseConfig, SharedStore};
pub use error::{ApiError, StartError};

use config::SharedStore as Store;
use db::Db;
use lease::{Leases, RedisLease, SqlLease};
use logship::LogShip;
use pages::{CacheClient, Pages};
use register::Registrar;
use sessions::{RedisSessions, Sessions, SqlSessions};
use stats::Stats;

/// Everything a request can reach. Immutable after start but for atomics.
pub struct App {
    pub config: Config,
    /// `X-Instance-ID`, the lease holder name and the log `source`.
    pub instance: String,
    pub db: Db,
    pub pages: Pages,
    pub sessions: Sessions,
    pub leases: Leases,
    pub logs: LogShip,
    pub stats: Arc<Stats>,
    /// `GET /metrics`: the request histogram and `stats`' counters. Filled
    /// before the `App` is shared, only read after.
    pub metrics: Registry,
    /// Set when shutdown begins: `/ready` answers 503 from then on.
    pub shutting_down: AtomicBool,
}

/// Aborts the task when dropped, so aborting [`run`] (a "killed" replica in
/// tests) takes its background tasks with it.
struct Owned<T>(JoinHandle<T>);

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Redis connection for sessions or the lease that fails fast while Redis
/// is down and reconnects as soon as it is back. The crate's defaults (no
/// connect or response timeout, six reconnects with backoff, about 12.6 s)
/// made requests hang through an outage and then fail with `broken pipe`
/// long after Redis had returned (found by the `redis-kill` drill).
async fn redis(
    url: &str,
    timeout: std::time::Duration,
) -> Result<redis::aio::ConnectionManager, StartError> {
    let client = redis::Client::open(url).map_err(StartError::Redis)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(REDIS_RECONNECTS)
        .set_max_delay(REDIS_MAX_RECONNECT_DELAY_MS);
    redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .map_err(StartError::Redis)
}

/// Reconnect attempts after a failed Redis command; the next command
/// starts a new round, so a short bound only shortens the wait.
const REDIS_RECONNECTS: usize = 1;
/// Longest pause between reconnect attempts, in milliseconds.
const REDIS_MAX_RECONNECT_DELAY_MS: u64 = 200;

/// Serves one replica on an already-bound `listener` until `shutdown`
/// completes, then unregisters, drains and returns.
///
/// `config` must be validated ([`Config::validate`]). Fails only at start
/// (database or Redis unreachable).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future,
) -> Result<(), StartError> {
    let addr = listener.local_addr().map_err(StartError::Listener)?;
    let instance = config
        .instance_id
        .clone()
        .unwrap_or_else(|| format!("app-{}-{:04x}", addr.port(), fastrand::u16(..)));
    let db = Db::connect(&config.database)
        .await
        .map_err(StartError::Database)?;
    sessions::seed_author(&db, &config.author, &config.password)
        .await
        .map_err(StartError::Database)?;
    if config.seed_posts {
        let n = seed::seed_posts(&db, &config.author)
            .await
            .map_err(StartError::Database)?;
        if n > 0 {
            tracing::info!(posts = n, "the blog was empty: seeded the welcome posts");
        }
    }
    let sessions = match &config.sessions {
        Store::Sql => Sessions::Sql(SqlSessions(db.clone())),
        Store::Redis(url) => {
            Sessions::Redis(RedisSessions(redis(url, config.service_timeout).await?))
        }
    };
    let leases = match &config.lease {
        Store::Sql => Leases::Sql(SqlLease(db.clone())),
        Store::Redis(url) => Leases::Redis(RedisLease(redis(url, config.service_timeout).await?)),
    };
    let stats = Arc::new(Stats::default());
    let mut metrics = Registry::default();
    let http = HttpMetrics::register(&mut metrics, &api::ROUTES);
    stats.register(&mut metrics);
    let cache = config.cache.as_ref().map(|url| {
        let tls = config.service_tls.as_ref();
        CacheClient::new(url, config.service_timeout, config.cache_max_age, tls)
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (logs, shipper) = logship::spawn(&config, &instance, stop_rx.clone());
    let shipper = shipper.map(Owned);
    let app = Arc::new(App {
        pages: Pages::new(db.clone(), cache, Arc::clone(&stats)),
        config,
        instance,
        db,
        sessions,
        leases,
        logs,
        stats,
        metrics,
        shutting_down: AtomicBool::new(false),
    });
    tracing::info!(
        %addr,
        instance = %app.instance,
        database = app.db.kind(),
        sessions = app.sessions.kind(),
        lease = app.leases.kind(),
        tls = app.config.tls.is_some(),
        "listening"
    );
    app.logs
        .info(format!("replica {} listening on {addr}", app.instance));

    let handler = {
        let app = Arc::clone(&app);
        move |request| api::handle(Arc::clone(&app), request)
    };
    let handler = sluice_service_common::measured(handler, http, api::route_index);
    let mut stop = stop_rx.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let mut server = Owned(tokio::spawn(sluice_service_common::serve_tls(
        listener,
        app.config.tls.clone(),
        handler,
        stopped,
        sluice_service_common::Limits::with_grace(app.config.drain_grace),
    )));
    let mut job = Owned(tokio::spawn(job::run_loop(
        Arc::clone(&app),
        stop_rx.clone(),
    )));
    let registrar = app.config.admin.as_ref().map(|url| {
        // The proxy may take its whole grace period to drain us.
        Arc::new(Registrar::new(
            url,
            addr.port(),
            app.config.drain_grace * 2,
            app.config.admin_token.as_ref(),
            app.config.service_tls.as_ref(),
        ))
    });
    let registration = registrar.clone().map(|r| {
        let app = Arc::clone(&app);
        Owned(tokio::spawn(async move {
            let attempts = r.register().await;
            tracing::info!(admin = r.admin(), attempts, "registered with the proxy");
            app.logs.info(format!(
                "registered with the proxy after {attempts} attempt(s)"
            ));
        }))
    });

    shutdown.await;
    tracing::info!(instance = %app.instance, "shutting down");
    app.shutting_down.store(true, Ordering::Release);
    // 1. Leave the proxy; it answers once it has drained its requests to us.
    drop(registration);
    if let Some(r) = &registrar {
        match r.unregister().await {
            Ok(status) => tracing::info!(%status, "unregistered from the proxy"),
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "unregister failed"
            ),
        }
    }
    // 1b. Behind proxies that only health-check us (no registration), keep
    //     serving while `/ping` answers 503, until they have marked us down:
    //     closing pooled connections they still pick would fail a POST sent
    //     on one as it closes (a 502 no proxy may retry).
    if !app.config.shutdown_delay.is_zero() {
        tracing::info!(delay = ?app.config.shutdown_delay, "serving on until the proxies mark us down");
        tokio::time::sleep(app.config.shutdown_delay).await;
    }
    // 2. Stop accepting and drain our own connections; stop the job.
    let _ = stop_tx.send(true);
    let _ = (&mut server.0).await;
    let _ = (&mut job.0).await;
    // 3. Ship what is buffered (one attempt).
    app.logs.info(format!("replica {} stopped", app.instance));
    if let Some(mut shipper) = shipper {
        let _ = (&mut shipper.0).await;
    }
    app.db.close().await;
    tracing::info!(instance = %app.instance, "stopped");
    Ok(())
}
