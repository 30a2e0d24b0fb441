//! In-process store: moka with a byte weigher and a per-entry TTL.
//!
//! Two clocks meet here. moka expires entries on its own clock as a backstop
//! (shortly after the deadline, freeing memory nobody swept), but the authority is the
//! `deadline` we stamp on each entry with `tokio::time::Instant`: `get` checks
//! it on every read, so an entry is never served at or past its deadline even
//! if moka has not noticed yet, and `purge_expired` removes exactly the
//! entries past it. Using tokio's clock also lets the unit tests below drive
//! expiry with paused time.
//!
//! The memory bound is moka's `max_capacity` measured in bytes by the
//! weigher; when it is exceeded moka's TinyLFU policy evicts (or declines to
//! admit) the entries least likely to be read again. It bounds the process's
//! memory, not only a count, because of two rules kept here: [`weight`]
//! charges what an entry really costs (measured, see
//! [`ENTRY_OVERHEAD_BYTES`]), and `put` stores copies that share no memory
//! with the request they came from (see `owned_entry`). The e2e test
//! `tests/rss.rs` holds the real binary's RSS to the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use tokio::time::Instant;

use crate::store::{Entry, Key, Store, StoreError, Usage};

/// Bytes charged per entry on top of its buffers: moka's hash-table slot,
/// value node, access and write deque nodes, timer-wheel node and `Arc`s,
/// plus our [`Stored`] (entry, TTL, deadline) inline in it.
///
/// Measured, not guessed: 100,000 unique entries with 9-byte keys and 1-byte
/// bodies, no content type, under a bound they never reach, grew the
/// process's RSS by 598 bytes each (661 with `Content-Type: text/plain`,
/// 2026-12, moka 0.12.16, glibc malloc). Charging
/// 512 + 2 × [`BUFFER_OVERHEAD_BYTES`] + 10 = 618 for that entry keeps the
/// bound true for the smallest entries, which cost the most per byte.
pub const ENTRY_OVERHEAD_BYTES: u64 = 512;

/// Bytes charged per heap buffer of an entry (key, body, content type) on
/// top of its length: the allocator's header and rounding (a chunk is at
/// least 32 bytes, in steps of 16) and the `Bytes` shared header a buffer
/// gets once it is first read.
pub const BUFFER_OVERHEAD_BYTES: u64 = 48;

#[derive(Clone, Debug)]
struct Stored {
    entry: Entry,
    /// The TTL moka's backstop expiry starts from (plus [`BACKSTOP_SLACK`]).
    ttl: Duration,
    /// The authoritative expiry: served only while `now < deadline`.
    deadline: Instant,
}

impl Stored {
    fn is_expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }
}

/// How long after an entry's deadline moka's own expiry drops it if no read
/// or purge has. The slack leaves the sweep to `purge_expired` (so its count
/// is exact) while still bounding how long a dead entry can hold memory.
pub const BACKSTOP_SLACK: Duration = Duration::from_secs(1);

/// moka's per-entry expiry: every insert, including a replacement, starts
/// that entry's own TTL afresh (the default `expire_after_update` would keep
/// the old entry's remaining time).
struct PerEntryTtl;

impl Expiry<Key, Stored> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Stored,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(BACKSTOP_SLACK))
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        value: &Stored,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(BACKSTOP_SLACK))
    }
}

/// Removal counts, written by moka's eviction listener and by our own
/// expiry paths. Atomics because the listener runs on whichever thread does
/// moka's housekeeping.
#[derive(Default)]
struct Removals {
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// Part of the bound that may be inserted before this store makes moka apply
/// its pending writes (and so its evictions): 1/16.
const UNAPPLIED_FRACTION: u64 = 16;

pub struct MemoryStore {
    cache: Cache<Key, Stored>,
    removals: Arc<Removals>,
    /// Weight inserted since the last [`Cache::run_pending_tasks`] this
    /// store ran. moka applies writes in batches of 64 (or every 300 ms),
    /// so without this the cache could exceed its bound by 64 of the
    /// largest entries (64 MiB at the default 1 MiB) between two batches.
    /// Relaxed: it only decides when to run housekeeping, which is correct
    /// at any time; a lost update delays or repeats one run.
    unapplied: AtomicU64,
    /// Weight past which `put` runs the pending tasks itself.
    apply_at: u64,
}

impl MemoryStore {
    /// A store holding at most `max_bytes` (as counted by [`weight`]).
    pub fn new(max_bytes: u64) -> Self {
        let removals = Arc::new(Removals::default());
        let listener_removals = Arc::clone(&removals);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, value: &Stored| weight(key, &value.entry))
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_key, _value, cause| match cause {
                RemovalCause::Size => {
                    listener_removals.evictions.fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Expired => {
                    listener_removals
                        .expirations
                        .fetch_add(1, Ordering::Relaxed);
                }
                // Our own removals; expiry-driven ones are counted where
                // they happen (`remove_if_expired`).
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Self {
            cache,
            removals,
            unapplied: AtomicU64::new(0),
            apply_at: (max_bytes / UNAPPLIED_FRACTION).max(1),
        }
    }

    /// Removes `key` only if it is (still) expired at `now`, atomically with
    /// respect to a concurrent `put` of a fresh value under the same key.
    fn remove_if_expired(&self, key: &Key, now: Instant) -> bool {
        let result = self
            .cache
            .entry(key.clone())
            .and_compute_with(|current| match current {
                Some(e) if e.value().is_expired(now) => Op::Remove,
                _ => Op::Nop,
            });
        let removed = matches!(result, CompResult::Removed(_));
        if removed {
            self.removals.expirations.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    fn get_now(&self, key: &Key) -> Option<Entry> {
        let stored = self.cache.get(key)?;
        let now = Instant::now();
        if !stored.is_expired(now) {
            return Some(stored.entry);
        }
        self.remove_if_expired(key, now);
        None
    }

    fn purge_now(&self) -> u64 {
        // Let moka apply pending writes and drop what it already knows is
        // expired (counted by the listener), then sweep by our deadline.
        self.cache.run_pending_tasks();
        let now = Instant::now();
        let expired: Vec<Key> = self
            .cache
            .iter()
            .filter(|(_, stored)| stored.is_expired(now))
            .map(|(key, _)| Key::clone(&key))
            .collect();
        let purged = expired
            .iter()
            .filter(|key| self.remove_if_expired(key, now))
            .count();
        self.cache.run_pending_tasks();
        purged as u64
    }

    fn usage_now(&self) -> Usage {
        self.cache.run_pending_tasks();
        Usage {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            evictions: self.removals.evictions.load(Ordering::Relaxed),
            expirations: self.removals.expirations.load(Ordering::Relaxed),
        }
    }
}

/// A copy of `key` in an allocation of exactly its length: the caller's may
/// be a `Vec` grown past its length.
fn owned_key(key: &Key) -> Key {
    Key::new(Bytes::copy_from_slice(key.as_bytes()))
}

/// A copy of `entry` that shares no memory with the request it came from.
///
/// A `Bytes` or `HeaderValue` from hyper can be a slice of the connection's
/// read buffer (kilobytes, for one request) or of a body buffer grown by
/// doubling; storing the slice would keep all of that alive for the entry's
/// lifetime, outside what [`weight`] counts. Copying costs one memcpy of at
/// most `--max-entry-bytes` per put and makes the weight the truth.
fn owned_entry(entry: &Entry) -> Entry {
    Entry {
        body: Bytes::copy_from_slice(&entry.body),
        content_type: entry.content_type.as_ref().map(|value| {
            // `from_bytes` accepts every byte a `HeaderValue` can hold, so
            // this cannot fail; if it ever did, the shared value is kept.
            HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone())
        }),
    }
}

/// What an entry costs against the memory bound, saturating at moka's `u32`:
/// what it really takes of the process's memory, not only its bytes.
pub fn weight(key: &Key, entry: &Entry) -> u32 {
    let buffer = |len: usize| len as u64 + BUFFER_OVERHEAD_BYTES;
    let body = if entry.body.is_empty() {
        0
    } else {
        buffer(entry.body.len())
    };
    let content_type = entry.content_type.as_ref().map_or(0, |v| buffer(v.len()));
    let total = ENTRY_OVERHEAD_BYTES + buffer(key.len()) + body + content_type;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// moka's sync cache never blocks on I/O (its housekeeping is bounded CPU
/// work), so these run inline in the async fns.
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        Ok(self.get_now(key))
    }

    async fn put(&self, key: Key, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + ttl;
        let key = owned_key(&key);
        let entry = owned_entry(&entry);
        let inserted = u64::from(weight(&key, &entry));
        self.cache.insert(
            key,
            Stored {
                entry,
                ttl,
                deadline,
            },
        );
        // Housekeeping is bounded CPU work under moka's own lock (the same
        // work moka would do inline on a later write).
        if self.unapplied.fetch_add(inserted, Ordering::Relaxed) + inserted >= self.apply_at {
            self.unapplied.store(0, Ordering::Relaxed);
            self.cache.run_pending_tasks();
        }
        Ok(())
    }

    async fn remove(&self, key: &Key) -> Result<bool, StoreError> {
        let Some(stored) = self.cache.remove(key) else {
            return Ok(false);
        };
        if stored.is_expired(Instant::now()) {
            // It had expired before anyone asked; count it as such.
            self.removals.expirations.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    async fn purge_expired(&self) -> Result<u64, StoreError> {
        Ok(self.purge_now())
    }

    async fn usage(&self) -> Result<Usage, StoreError> {
        Ok(self.usage_now())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static [u8]) -> Entry {
        Entry {
            body: Bytes::from_static(body),
            content_type: Some(HeaderValue::from_static("text/plain")),
        }
    }

    fn key(k: &'static str) -> Key {
        Key::new(Bytes::from_static(k.as_bytes()))
    }

    // Paused time moves only tokio's clock; moka's backstop runs on the real
    // clock and these TTLs are far longer than the test, so every expiry
    // observed here comes from our deadline check.
    #[tokio::test(start_paused = true)]
    async fn served_until_the_deadline_and_never_at_or_after_it() {
        let store = MemoryStore::new(1 << 20);
        store
            .put(key("a"), entry(b"x"), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(60) - Duration::from_millis(1)).await;
        assert_eq!(store.get(&key("a")).await.unwrap(), Some(entry(b"x")));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(store.get(&key("a")).await.unwrap(), None);
        assert_eq!(store.usage().await.unwrap().expirations, 1);
        assert_eq!(store.usage().await.unwrap().entries, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn purge_removes_only_expired_entries() {
        let store = MemoryStore::new(1 << 20);
        store
            .put(key("short"), entry(b"s"), Duration::from_secs(10))
            .await
            .unwrap();
        store
            .put(key("long"), entry(b"l"), Duration::from_secs(100))
            .await
            .unwrap();
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(store.purge_expired().await.unwrap(), 1);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        let usage = store.usage().await.unwrap();
        assert_eq!(usage.entries, 1);
        assert_eq!(usage.expirations, 1);
        assert_eq!(store.get(&key("long")).await.unwrap(), Some(entry(b"l")));
    }

    #[tokio::test(start_paused = true)]
    async fn replacing_an_entry_restarts_its_ttl() {
        let store = MemoryStore::new(1 << 20);
        store
            .put(key("a"), entry(b"old"), Duration::from_secs(10))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        store
            .put(key("a"), entry(b"new"), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(store.get(&key("a")).await.unwrap(), Some(entry(b"new")));
        assert_eq!(store.purge_expired().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn remove_reports_whether_a_live_entry_was_there() {
        let store = MemoryStore::new(1 << 20);
        assert!(!store.remove(&key("a")).await.unwrap());
        store
            .put(key("a"), entry(b"x"), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.remove(&key("a")).await.unwrap());
        assert_eq!(store.get(&key("a")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_byte_bound_evicts_and_holds() {
        let max = 16 * 1024;
        let store = MemoryStore::new(max);
        static BODY: [u8; 1000] = [7; 1000];
        for i in 0..200u32 {
            let k = Key::new(format!("k{i}").into_bytes());
            let e = Entry {
                body: Bytes::from_static(&BODY),
                content_type: None,
            };
            store.put(k, e, Duration::from_secs(600)).await.unwrap();
        }
        let usage = store.usage().await.unwrap();
        assert!(usage.evictions > 0, "{usage:?}");
        assert!(usage.bytes <= max, "{usage:?}");
        assert!(usage.entries < 200, "{usage:?}");
    }

    /// What the map really holds, pending writes included (moka's
    /// `weighted_size` counts only the writes it has applied).
    fn held_weight(store: &MemoryStore) -> u64 {
        store
            .cache
            .iter()
            .map(|(key, stored)| u64::from(weight(&key, &stored.entry)))
            .sum()
    }

    /// moka applies writes, and so evictions, in batches of 64: with large
    /// entries the map held 64 of them past the bound between two batches.
    /// After every put it now holds at most the bound plus the unapplied
    /// allowance plus that one entry.
    #[tokio::test]
    async fn large_entries_never_hold_a_batch_past_the_bound() {
        let max = 16 << 20;
        let store = MemoryStore::new(max);
        let body = Bytes::from(vec![b'z'; 512 << 10]);
        let mut most = 0;
        for i in 0..96u32 {
            let e = Entry {
                body: body.clone(),
                content_type: None,
            };
            let k = Key::new(format!("k{i}").into_bytes());
            let entry_weight = u64::from(weight(&k, &e));
            store.put(k, e, Duration::from_secs(600)).await.unwrap();
            let held = held_weight(&store);
            most = most.max(held);
            assert!(
                held <= max + store.apply_at + entry_weight,
                "put {i}: {held} held, bound {max}"
            );
        }
        assert!(most > max / 2, "the fill reached the bound: {most}");
    }

    #[test]
    fn weight_counts_key_body_content_type_and_overhead() {
        let e = entry(b"hello");
        assert_eq!(
            u64::from(weight(&key("abc"), &e)),
            ENTRY_OVERHEAD_BYTES + 3 * BUFFER_OVERHEAD_BYTES + 3 + 5 + "text/plain".len() as u64
        );
        // An empty body is not a buffer (`Bytes::new()` allocates nothing);
        // no content type is none either.
        let bare = Entry {
            body: Bytes::new(),
            content_type: None,
        };
        assert_eq!(
            u64::from(weight(&key("abc"), &bare)),
            ENTRY_OVERHEAD_BYTES + BUFFER_OVERHEAD_BYTES + 3
        );
    }

    /// What the store holds shares nothing with what it was given: a slice
    /// of a bigger buffer would keep all of it alive.
    #[tokio::test]
    async fn put_stores_exact_copies() {
        let store = MemoryStore::new(1 << 20);
        let read_buffer = Bytes::from(vec![b'a'; 8192]);
        let e = Entry {
            body: read_buffer.slice(0..1),
            content_type: Some(HeaderValue::from_maybe_shared(read_buffer.slice(1..5)).unwrap()),
        };
        store
            .put(key("a"), e.clone(), Duration::from_secs(60))
            .await
            .unwrap();
        let stored = store.get(&key("a")).await.unwrap().unwrap();
        assert_eq!(stored, e);
        let inside = |p: *const u8| read_buffer.as_ptr_range().contains(&p);
        assert!(!inside(stored.body.as_ptr()));
        assert!(!inside(stored.content_type.unwrap().as_bytes().as_ptr()));
    }
}
