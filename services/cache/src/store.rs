//! The storage seam: everything the HTTP layer needs from a cache backend.
//!
//! `api` talks only to [`Store`]; `memory` (moka, in process) and `redis`
//! (shared by several replicas) implement it. The trait is generic rather
//! than `dyn`: `run()` picks the implementation once at startup and the whole
//! server is monomorphised for it, so a GET costs no boxed future.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

/// A cache key: the URL-decoded bytes of the `key` query parameter.
///
/// Keys are arbitrary byte strings (clients URL-encode them), so this is not a
/// `String`: two different encodings of invalid UTF-8 must not collide.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(Bytes);

impl Key {
    /// Wraps already-decoded key bytes. Callers validate emptiness and length.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// What is stored under a key: the body bytes and the `Content-Type` they
/// were sent with (replayed verbatim on a hit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
}

/// Store-wide numbers for `GET /stats`. Hits and misses are counted by the
/// API layer per replica; these come from the store itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub entries: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub expirations: u64,
}

/// Why the store could not answer. Inspect with the predicates, not the text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing service (Redis) failed or did not answer in time.
    #[error("store backend failed")]
    Backend(#[source] ::redis::RedisError),
    /// The backend did not answer within the readiness deadline.
    #[error("store did not answer in time")]
    Timeout,
    /// A value in the shared store is not in our framing (written by
    /// something else, or by an incompatible version).
    #[error("stored value is corrupt: {0}")]
    Corrupt(&'static str),
}

impl StoreError {
    /// True when retrying later may succeed (the backend is down or slow),
    /// as opposed to bad data that will stay bad.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Backend(_) | Self::Timeout => true,
            Self::Corrupt(_) => false,
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        Self::Backend(e)
    }
}

/// A TTL key/value store.
///
/// Contract every implementation keeps:
/// - `get` never returns an entry whose time to live has passed, whatever the
///   backend's own expiry machinery has or has not done yet;
/// - `put` replaces any previous entry and its TTL; `ttl` is never zero (the
///   API layer turns `max-age=0` into a removal);
/// - `purge_expired` removes only entries whose TTL has passed.
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and `/stats` ("memory", "redis").
    fn kind(&self) -> &'static str;

    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    fn put(
        &self,
        key: Key,
        entry: Entry,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the entry; returns whether a live one was there.
    fn remove(&self, key: &Key) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes expired entries now and returns how many this call removed.
    fn purge_expired(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn usage(&self) -> impl Future<Output = Result<Usage, StoreError>> + Send;

    /// Readiness: succeeds when the store answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
