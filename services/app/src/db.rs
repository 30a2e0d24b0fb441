//! The shared SQL database: one pool over SQLite or PostgreSQL, and the
//! schema migration every replica runs at start.
//!
//! The app talks to both through the same SQL text: `$N` placeholders (which
//! sqlx's SQLite driver also accepts), `ON CONFLICT` upserts and `RETURNING`
//! (SQLite ≥ 3.35, bundled). Only the DDL of the `posts` key differs. Every
//! time is a `BIGINT` of Unix milliseconds, so both decode to `i64`.
//!
//! Code that queries writes one expression for both pools with [`on_pool!`];
//! each arm is type-checked against its own driver, so nothing is boxed.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::DatabaseConfig;

/// How long SQLite waits for another replica's write lock before `BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at starting on a SQLite file another replica holds locked
/// (`Db::connect`): about 10 s of backoff in all.
const SQLITE_START_ATTEMPTS: u32 = 20;

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), with their extended codes.
fn sqlite_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}
/// How long a request waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Arbitrary key of the PostgreSQL advisory lock that serialises migrations
/// (and the welcome posts' seeding, `seed`).
pub(crate) const MIGRATION_LOCK: i64 = 0x511C3;

/// Tables shared by both databases (everything but `posts`).
const COMMON_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS authors (name TEXT PRIMARY KEY, salt TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, author TEXT NOT NULL, expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS job_runs (job TEXT NOT NULL, period BIGINT NOT NULL, instance TEXT NOT NULL, \
     ran_at BIGINT NOT NULL, published BIGINT NOT NULL, PRIMARY KEY (job, period))",
];

const POSTS_COLUMNS: &str = "title TEXT NOT NULL, body TEXT NOT NULL, author TEXT NOT NULL, \
     publish_at BIGINT, published BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL";

/// A pool over either database. Cloning is cheap (the pools are `Arc`s).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db`.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Db {
    /// Connects and migrates. Safe when several replicas start at once:
    /// on PostgreSQL the migration holds an advisory lock; on SQLite a
    /// replica that meets another's lock where SQLite does not wait for it
    /// (setting WAL mode on a new file, or two deferred transactions that
    /// both want to write: `database is locked` at once, whatever
    /// `busy_timeout` says) tries again, a bounded number of times.
    pub async fn connect(config: &DatabaseConfig) -> Result<Db, sqlx::Error> {
        let mut attempt = 1;
        loop {
            match Db::connect_once(config).await {
                Err(e) if attempt < SQLITE_START_ATTEMPTS && sqlite_busy(&e) => {
                    tracing::debug!(attempt, error = %e, "the database is locked at start; trying again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn connect_once(config: &DatabaseConfig) -> Result<Db, sqlx::Error> {
        let db = match config {
            DatabaseConfig::Sqlite(path) => Db::Sqlite(open_sqlite(path).await?),
            DatabaseConfig::Postgres(url) => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?,
            ),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// `SELECT 1`: the readiness probe.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(drop))
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    /// Idempotent: `CREATE … IF NOT EXISTS` only. On PostgreSQL concurrent
    /// `CREATE TABLE IF NOT EXISTS` can still collide in the catalog, so the
    /// whole migration runs under a transaction-scoped advisory lock. On
    /// SQLite each statement takes the write lock and `busy_timeout` makes a
    /// second replica wait for it instead of failing.
    async fn migrate(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite(p) => {
                let posts = format!(
                    "CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY AUTOINCREMENT, {POSTS_COLUMNS})"
                );
                for ddl in std::iter::once(posts.as_str()).chain(COMMON_DDL.iter().copied()) {
                    sqlx::query(ddl).execute(p).await?;
                }
            }
            Db::Postgres(p) => {
                let posts = format!(
                    "CREATE TABLE IF NOT EXISTS posts (id BIGSERIAL PRIMARY KEY, {POSTS_COLUMNS})"
                );
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
                for ddl in std::iter::once(posts.as_str()).chain(COMMON_DDL.iter().copied()) {
                    sqlx::query(ddl).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

async fn open_sqlite(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
}

/// Wall-clock Unix milliseconds: shared by replicas (leases, periods,
/// expiry), so it is the system clock and not a monotonic one.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replicas starting together on one new SQLite file (the demo stack
    /// starts them at once): every one connects and migrates. A replica
    /// failed with `database is locked` before the retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_starting_at_once_on_a_new_sqlite_file_all_connect() {
        for round in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = DatabaseConfig::Sqlite(dir.path().join("blog.db"));
            let starts: Vec<_> = (0..8)
                .map(|_| {
                    let config = config.clone();
                    tokio::spawn(async move { Db::connect(&config).await })
                })
                .collect();
            for s in starts {
                let db = s
                    .await
                    .expect("task")
                    .unwrap_or_else(|e| panic!("round {round}: {e}"));
                db.ping().await.expect("ping");
                db.close().await;
            }
        }
    }

    #[test]
    fn only_busy_and_locked_are_retried() {
        assert!(!sqlite_busy(&sqlx::Error::RowNotFound));
        assert!(!sqlite_busy(&sqlx::Error::PoolTimedOut));
    }
}
