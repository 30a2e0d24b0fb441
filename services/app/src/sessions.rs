//! Login and sessions: the seeded author, password checks, the `sid`
//! cookie, and the session store every replica shares.
//!
//! Sessions never live in a replica's memory: a session created on one
//! replica is found by every other one and survives restarts. The store is
//! the SQL database by default ([`SqlSessions`]) or Redis ([`RedisSessions`],
//! `--sessions redis://…`, where Redis expires them itself).
//!
//! Passwords: no password-hashing crate (argon2, scrypt, pbkdf2) is in the
//! workspace, so the stored hash is an iterated, salted SHA-256
//! ([`HASH_ROUNDS`] rounds over a 16-byte random salt), compared in constant
//! time. It is a demo-grade key stretch, not a memory-hard KDF.

use std::future::Future;
use std::io::Read;
use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::db::{Db, millis, now_ms, on_pool};

/// Name of the session cookie.
pub const COOKIE: &str = "sid";
/// SHA-256 rounds of the password hash.
pub const HASH_ROUNDS: u32 = 10_000;
/// Prefix of session keys in Redis.
const REDIS_PREFIX: &str = "sluice-app:session:";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQL store")]
    Sql(#[from] sqlx::Error),
    #[error("Redis store")]
    Redis(#[from] redis::RedisError),
}

/// Where sessions live. `async fn` in a trait, used through the [`Sessions`]
/// enum so nothing is boxed.
pub trait SessionStore {
    /// Stores `sid → author` for `ttl`.
    fn put(
        &self,
        sid: &str,
        author: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The author of a live session.
    fn author(&self, sid: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Sessions in the `sessions` table; expired rows are ignored on read and
/// swept on write.
#[derive(Clone, Debug)]
pub struct SqlSessions(pub Db);

impl SessionStore for SqlSessions {
    async fn put(&self, sid: &str, author: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(&self.0, p => {
            sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                .bind(now)
                .execute(p)
                .await?;
            sqlx::query("INSERT INTO sessions (id, author, expires_at) VALUES ($1, $2, $3)")
                .bind(sid)
                .bind(author)
                .bind(now.saturating_add(millis(ttl)))
                .execute(p)
                .await?;
        });
        Ok(())
    }

    async fn author(&self, sid: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT author FROM sessions WHERE id = $1 AND expires_at > $2";
        let author = on_pool!(&self.0, p => {
            sqlx::query_scalar::<_, String>(sql)
                .bind(sid)
                .bind(now_ms())
                .fetch_optional(p)
                .await?
        });
        Ok(author)
    }
}

/// Sessions as Redis keys with a TTL (`SET … PX`).
#[derive(Clone)]
pub struct RedisSessions(pub ConnectionManager);

impl SessionStore for RedisSessions {
    async fn put(&self, sid: &str, author: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.0.clone();
        redis::cmd("SET")
            .arg(format!("{REDIS_PREFIX}{sid}"))
            .arg(author)
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn author(&self, sid: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.0.clone();
        Ok(redis::cmd("GET")
            .arg(format!("{REDIS_PREFIX}{sid}"))
            .query_async::<Option<String>>(&mut conn)
            .await?)
    }
}

/// The configured store.
#[derive(Clone)]
pub enum Sessions {
    Sql(SqlSessions),
    Redis(RedisSessions),
}

impl Sessions {
    pub fn kind(&self) -> &'static str {
        match self {
            Sessions::Sql(_) => "sql",
            Sessions::Redis(_) => "redis",
        }
    }

    /// Creates a session for `author`; returns its id.
    pub async fn create(&self, author: &str, ttl: Duration) -> Result<String, StoreError> {
        let sid = hex(&random_bytes::<32>());
        self.put(&sid, author, ttl).await?;
        Ok(sid)
    }
}

impl SessionStore for Sessions {
    async fn put(&self, sid: &str, author: &str, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Sessions::Sql(s) => s.put(sid, author, ttl).await,
            Sessions::Redis(s) => s.put(sid, author, ttl).await,
        }
    }

    async fn author(&self, sid: &str) -> Result<Option<String>, StoreError> {
        match self {
            Sessions::Sql(s) => s.author(sid).await,
            Sessions::Redis(s) => s.author(sid).await,
        }
    }
}

/// Seeds `author` unless it exists. Replicas starting together each try;
/// the first insert wins and the others keep its salt and hash.
pub async fn seed_author(db: &Db, author: &str, password: &str) -> Result<(), sqlx::Error> {
    let salt = hex(&random_bytes::<16>());
    let hash = hash_password(&salt, password);
    let sql =
        "INSERT INTO authors (name, salt, hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
    on_pool!(db, p => sqlx::query(sql).bind(author).bind(&salt).bind(&hash).execute(p).await.map(drop))?;
    Ok(())
}

/// Whether `password` is `author`'s. Unknown authors cost the same hashing
/// work as known ones, so timing does not reveal which names exist.
pub async fn verify(db: &Db, author: &str, password: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT salt, hash FROM authors WHERE name = $1";
    let row: Option<(String, String)> = on_pool!(db, p => {
        sqlx::query_as(sql).bind(author).fetch_optional(p).await?
    });
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || match row {
        Some((salt, hash)) => {
            constant_time_eq(hash_password(&salt, &password).as_bytes(), hash.as_bytes())
        }
        None => {
            let _ = hash_password("0000", &password);
            false
        }
    })
    .await
    .unwrap_or(false);
    Ok(ok)
}

/// Iterated salted SHA-256, hex.
pub fn hash_password(salt: &str, password: &str) -> String {
    let mut digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(password.as_bytes())
        .finalize();
    for _ in 1..HASH_ROUNDS {
        digest = Sha256::new()
            .chain_update(digest)
            .chain_update(salt.as_bytes())
            .finalize();
    }
    hex(&digest)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(sid: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        ttl.as_secs()
    )
}

/// The session id in a `Cookie` header, if any.
pub fn sid_from_cookies<'a>(
    headers: impl Iterator<Item = &'a http::HeaderValue>,
) -> Option<String> {
    headers
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
        })
}

/// Bytes from the OS's CSPRNG (`/dev/urandom`). Falls back to a time- and
/// `fastrand`-seeded value only if the device cannot be read, which on the
/// Linux targets we run on does not happen.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out));
    if read.is_err() {
        tracing::warn!("/dev/urandom unreadable; session ids use a weaker source");
        let mut rng =
            fastrand::Rng::with_seed(now_ms().unsigned_abs() ^ u64::from(std::process::id()));
        rng.fill(&mut out);
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_salted_and_checked() {
        let a = hash_password("s1", "pw");
        assert_eq!(a, hash_password("s1", "pw"));
        assert_ne!(a, hash_password("s2", "pw"));
        assert_ne!(a, hash_password("s1", "pw2"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn cookies() {
        let v = [http::HeaderValue::from_static("a=1; sid=abc; b=2")];
        assert_eq!(sid_from_cookies(v.iter()).as_deref(), Some("abc"));
        let none = [http::HeaderValue::from_static("sidx=1")];
        assert_eq!(sid_from_cookies(none.iter()), None);
        let c = set_cookie("abc", Duration::from_secs(60));
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.starts_with("sid=abc"));
    }
}
