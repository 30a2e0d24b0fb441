//! The buckets of one rate limit, one per key, in a table split into
//! [`SHARDS`] independently locked shards: workers limiting different keys
//! rarely meet on a lock, and no lock is global.
//!
//! # Memory bound
//! The table holds at most `max_keys` buckets (about 64 bytes each; a
//! global limit's entries also keep their key's text). A client rotating
//! addresses or header values to grow it finds, when a shard is full, the
//! shard first dropping every bucket that has refilled (forgetting those
//! loses nothing: a key seen again starts full), then, if that freed less
//! than a quarter, the least recently seen quarter. Each sweep frees a
//! quarter of the shard, so its cost is amortized over the inserts that
//! fill it again. An evicted key that was still being limited starts over
//! with a full burst: the price of the bound.

use super::bucket::Bucket;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::time::Duration;
use tokio::time::Instant;

/// Shards per table: more than the workers that could contend.
pub const SHARDS: usize = 16;

/// A key's bucket, and what global mode needs to sync it.
#[derive(Debug)]
pub struct Entry {
    pub bucket: Bucket,
    /// Tokens taken since the last sync (global mode).
    pub taken: u32,
    pub seen: Instant,
    /// The key's text for the shared store (global mode only).
    pub name: Option<Box<[u8]>>,
}

/// The keys are already SipHash outputs (keyed per process, so a client
/// cannot aim its keys at one shard); the maps use them as they are.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>;

#[derive(Debug)]
pub struct Table {
    /// # Concurrency
    /// A `parking_lot::Mutex` per shard, held for one lookup and a few
    /// float operations (or one sweep when the shard is full), never
    /// across an `.await`.
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
    hasher: RandomState,
}

impl Table {
    pub fn new(max_keys: usize) -> Table {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_cap: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// The table's hash of a key's bytes (tagged by kind by the caller).
    pub fn hash(&self, kind: u8, bytes: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u8(kind);
        h.write(bytes);
        h.finish()
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        // The top bits: hashbrown uses the low ones for its own index.
        &self.shards[(key >> 60) as usize % SHARDS]
    }

    /// Takes a token from `key`'s bucket (made full if new); `name` gives
    /// the key's text when a new entry needs it (global mode).
    pub fn take(
        &self,
        key: u64,
        rate: f64,
        burst: f64,
        now: Instant,
        name: impl FnOnce() -> Option<Box<[u8]>>,
    ) -> Result<(), Duration> {
        let mut shard = self.shard(key).lock();
        if shard.len() >= self.shard_cap && !shard.contains_key(&key) {
            evict(&mut shard, self.shard_cap, rate, burst, now);
        }
        let entry = shard.entry(key).or_insert_with(|| Entry {
            bucket: Bucket::full(burst, now),
            taken: 0,
            seen: now,
            name: name(),
        });
        entry.seen = now;
        let r = entry.bucket.take(rate, burst, now);
        if r.is_ok() {
            entry.taken = entry.taken.saturating_add(1);
        }
        r
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    /// Calls `f` on every entry, one shard locked at a time (global sync).
    pub fn for_each(&self, mut f: impl FnMut(u64, &mut Entry)) {
        for shard in self.shards.iter() {
            for (k, e) in shard.lock().iter_mut() {
                f(*k, e);
            }
        }
    }

    /// Calls `f` on `key`'s entry, if it is still there.
    pub fn with(&self, key: u64, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.shard(key).lock().get_mut(&key) {
            f(e);
        }
    }
}

/// Frees at least a quarter of a full shard: refilled buckets, then the
/// least recently seen.
fn evict(shard: &mut Shard, cap: usize, rate: f64, burst: f64, now: Instant) {
    shard.retain(|_, e| !e.bucket.is_full(rate, burst, now));
    let target = cap - cap / 4 - 1;
    if shard.len() > target {
        let excess = shard.len() - target;
        let mut by_age: Vec<(Instant, u64)> = shard.iter().map(|(k, e)| (e.seen, *k)).collect();
        by_age.select_nth_unstable(excess - 1);
        for (_, k) in &by_age[..excess] {
            shard.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_keys_never_grow_the_table_past_its_cap() {
        let table = Table::new(1000);
        let t0 = Instant::now();
        // A slow refill, so that nothing is idle: eviction must fall back to age.
        for i in 0u64..100_000 {
            let key = table.hash(0, &i.to_le_bytes());
            let _ = table.take(key, 0.001, 5.0, t0 + Duration::from_micros(i), || None);
            assert!(table.len() <= 1000 + SHARDS, "at {i}: {}", table.len());
        }
    }

    #[test]
    fn a_busy_key_outlives_a_flood_of_new_ones() {
        let table = Table::new(64);
        let t0 = Instant::now();
        let busy = table.hash(0, b"busy");
        for _ in 0..5 {
            assert!(table.take(busy, 0.001, 5.0, t0, || None).is_ok());
        }
        for i in 0u64..10_000 {
            let now = t0 + Duration::from_millis(i);
            // The busy key is seen all along, so it is never the oldest.
            assert!(table.take(busy, 0.001, 5.0, now, || None).is_err());
            let key = table.hash(0, &i.to_le_bytes());
            let _ = table.take(key, 0.001, 5.0, now, || None);
        }
    }

    #[test]
    fn refilled_buckets_are_dropped_first() {
        let table = Table::new(SHARDS * 4);
        let t0 = Instant::now();
        for i in 0u64..1000 {
            let key = table.hash(0, &i.to_le_bytes());
            // 1000 per second: each bucket has refilled by the next insert.
            let now = t0 + Duration::from_millis(i * 10);
            assert!(table.take(key, 1000.0, 2.0, now, || None).is_ok());
        }
        assert!(table.len() <= SHARDS * 4);
    }
}
