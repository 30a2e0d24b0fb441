//! The scheduled job's lease: at most one replica holds it at a time; the
//! holder releases it when done, and it expires on its own if the holder
//! dies (process killed, runtime dropped) so another replica takes over.
//!
//! * SQL ([`SqlLease`]): one row per lease name. Taking it is a single
//!   upsert that only overwrites a row whose `expires_at` has passed, so
//!   two replicas racing cannot both see "acquired" (the row lock or SQLite's
//!   write lock orders them, and the loser's `WHERE` no longer matches).
//! * Redis ([`RedisLease`]): `SET key holder NX PX ttl`; release is a
//!   compare-and-delete script so a holder whose lease already expired and
//!   was taken over cannot delete its successor's.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::db::{Db, millis, now_ms, on_pool};
use crate::sessions::StoreError;

const REDIS_PREFIX: &str = "sluice-app:lease:";
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

pub trait Lease {
    /// Takes `name` for `holder` for `ttl` if nobody holds it.
    fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives `name` back, if `holder` still holds it.
    fn release(
        &self,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Clone, Debug)]
pub struct SqlLease(pub Db);

impl Lease for SqlLease {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let sql = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                   WHERE leases.expires_at <= $4";
        let done = on_pool!(&self.0, p => {
            sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .bind(now.saturating_add(millis(ttl)))
                .bind(now)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM leases WHERE name = $1 AND holder = $2";
        on_pool!(&self.0, p => sqlx::query(sql).bind(name).bind(holder).execute(p).await.map(drop))?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct RedisLease(pub ConnectionManager);

impl Lease for RedisLease {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.0.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(format!("{REDIS_PREFIX}{name}"))
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(reply.is_some())
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.0.clone();
        redis::Script::new(RELEASE_SCRIPT)
            .key(format!("{REDIS_PREFIX}{name}"))
            .arg(holder)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }
}

/// The configured lease store.
#[derive(Clone)]
pub enum Leases {
    Sql(SqlLease),
    Redis(RedisLease),
}

impl Leases {
    pub fn kind(&self) -> &'static str {
        match self {
            Leases::Sql(_) => "sql",
            Leases::Redis(_) => "redis",
        }
    }
}

impl Lease for Leases {
    async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Leases::Sql(l) => l.try_acquire(name, holder, ttl).await,
            Leases::Redis(l) => l.try_acquire(name, holder, ttl).await,
        }
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        match self {
            Leases::Sql(l) => l.release(name, holder).await,
            Leases::Redis(l) => l.release(name, holder).await,
        }
    }
}
