//! Consistent hashing on a ring with virtual nodes (ketama style): adding a
//! backend moves only the keys that now land on it; removing one moves only
//! its own keys. The ring is built per snapshot, off the workers, in
//! O(p log p) for its p points; a pick is a binary search.
//!
//! A backend gets 160 points per unit of weight (nginx's `hash … consistent`),
//! and a ring at most [`MAX_RING_POINTS`]: past that, every backend's count is
//! scaled down alike. A backend's points are a prefix of one fixed sequence,
//! so scaling drops points and moves only the keys that were on them.

use super::PickKey;
use crate::upstream::backend::Backend;
use http::HeaderName;
use std::sync::Arc;

/// Virtual nodes per unit of weight: enough for an even spread over few backends.
const VNODES_PER_WEIGHT: u64 = 160;
/// Ring points a key's walk looks at before it scans the backends in order
/// (`Ring::pick_where`).
const RING_WALK: usize = 256;
/// The most points a ring holds: 8 bytes each, so 8 MiB. Within the caps
/// (`config::defaults::MAX_GROUP_BACKENDS`) that is still 10 per backend;
/// unbounded, 60 backends at weight 10,000 made a 200 MB ring.
pub const MAX_RING_POINTS: usize = 1 << 20;
/// A point is one `u64`: its hash's top 44 bits, then its backend's index.
/// 2²⁰ indices cover a group at its cap several times over (reload can add
/// configured backends to registered ones); 44 bits keep collisions among
/// 2²⁰ points unlikely (p ≈ 3 %), and a collision only decides which of two
/// backends owns one point.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// What to hash.
#[derive(Clone, Debug)]
pub enum HashOn {
    Header(HeaderName),
    Cookie(String),
    Client,
}

impl HashOn {
    pub fn key_hash(&self, key: &PickKey<'_>) -> Option<u64> {
        match self {
            HashOn::Header(name) => key.headers.get(name).map(|v| stable_hash(v.as_bytes())),
            HashOn::Cookie(name) => key
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| stable_hash(v.as_bytes())),
            HashOn::Client => Some(match key.client.0.ip() {
                std::net::IpAddr::V4(ip) => stable_hash(&ip.octets()),
                std::net::IpAddr::V6(ip) => stable_hash(&ip.octets()),
            }),
        }
    }
}

#[derive(Debug)]
pub struct Ring {
    /// Sorted; see [`INDEX_BITS`].
    points: Box<[u64]>,
}

impl Ring {
    /// A ring for `backends` with effective `weights` in units of
    /// `1/unit` of a weight (a slow-starting backend has fewer points; its
    /// points are a prefix of its full set, so as it ramps keys only move
    /// onto it).
    pub fn new(backends: &[Arc<Backend>], weights: &[u32], unit: u32) -> Ring {
        let counts = points_per_backend(weights, unit);
        let mut points = Vec::with_capacity(counts.iter().sum());
        // Past 2²⁰ backends (beyond every cap) the rest get no points.
        let indexed = backends.iter().zip(&counts).take(1 << INDEX_BITS);
        for (i, (b, &count)) in indexed.enumerate() {
            // The point depends on the backend's address only, never on its
            // index, so a backend keeps its points when others come and go.
            let mut name = Fnv::new();
            name.write(b.addr.to_string().as_bytes());
            name.write(b"#");
            for r in 0..count as u32 {
                let mut h = name;
                h.write(&r.to_le_bytes());
                points.push((h.finish() & !INDEX_MASK) | i as u64);
            }
        }
        points.sort_unstable();
        Ring {
            points: points.into_boxed_slice(),
        }
    }

    pub fn pick(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let p = self.points[self.start(hash)];
        Some((p & INDEX_MASK) as usize)
    }

    /// The point a key lands on: the first at or after its hash, wrapping.
    fn start(&self, hash: u64) -> usize {
        let hash = hash & !INDEX_MASK;
        let i = self.points.partition_point(|&p| p < hash);
        if i == self.points.len() { 0 } else { i }
    }

    /// The first backend clockwise from the key's point that `ok` accepts
    /// (bounded loads: see `Selector::pick_where`). The walk looks at
    /// [`RING_WALK`] points at most (points interleave, so that is most
    /// backends of a group of a few dozen), then scans the backends in
    /// order from the key's own: O(n) at worst, never the whole ring.
    pub fn pick_where(
        &self,
        hash: u64,
        backends: &[Arc<Backend>],
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.start(hash);
        let len = self.points.len();
        let owner = |k: usize| (self.points[(start + k) % len] & INDEX_MASK) as usize;
        let accepted = |i: usize| backends.get(i).is_some_and(|b| ok(b));
        if let Some(i) = (0..len.min(RING_WALK)).map(owner).find(|&i| accepted(i)) {
            return Some(i);
        }
        let n = backends.len();
        (0..n).map(|k| (owner(0) + k) % n).find(|&i| accepted(i))
    }
}

/// How many points each backend gets: 160 per unit of weight, all scaled
/// down alike when that would pass [`MAX_RING_POINTS`] (at least one each,
/// which the group cap leaves room for).
fn points_per_backend(weights: &[u32], unit: u32) -> Vec<usize> {
    let unit = u64::from(unit.max(1));
    let wanted: Vec<u64> = weights
        .iter()
        .map(|&w| (u64::from(w.max(1)) * VNODES_PER_WEIGHT / unit).max(1))
        .collect();
    let total: u64 = wanted.iter().sum();
    let cap = MAX_RING_POINTS as u64;
    if total <= cap {
        return wanted.iter().map(|&w| w as usize).collect();
    }
    // One point each, and the rest shared in proportion: Σ ≤ n + (cap − n).
    let spare = cap.saturating_sub(weights.len() as u64);
    wanted
        .iter()
        .map(|&w| (1 + (u128::from(w) * u128::from(spare) / u128::from(total)) as u64) as usize)
        .collect()
}

/// FNV-1a followed by murmur3's finaliser: stable across runs and machines
/// (unlike `DefaultHasher`), so every proxy instance agrees on the ring.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(bytes);
    h.finish()
}

/// [`stable_hash`] fed in pieces, so a ring hashes a backend's name once
/// for all its points.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::test_backends;

    fn ring(b: &[Arc<Backend>]) -> Ring {
        let w: Vec<u32> = b.iter().map(|x| x.weight).collect();
        Ring::new(b, &w, 1)
    }

    #[test]
    fn a_ramping_backend_only_takes_keys() {
        // Slow start: the third backend at 3/10 of its weight, then full.
        let b = test_backends(&[1, 1, 1]);
        let (part, full) = (Ring::new(&b, &[10, 10, 3], 10), ring(&b));
        let mut on_third = (0, 0);
        for k in 0..10_000u32 {
            let h = stable_hash(&k.to_le_bytes());
            let (p, f) = (part.pick(h).unwrap(), full.pick(h).unwrap());
            if p == 2 {
                assert_eq!(f, 2, "a key on the ramping backend stays there");
                on_third.0 += 1;
            }
            on_third.1 += usize::from(f == 2);
        }
        assert!(on_third.0 * 2 < on_third.1, "{on_third:?}");
    }

    #[test]
    fn a_key_keeps_its_backend_when_one_is_added() {
        let three = test_backends(&[1, 1, 1]);
        let mut four = three.clone();
        four.extend(test_backends(&[1, 1, 1, 1]).into_iter().skip(3));
        let (r3, r4) = (ring(&three), ring(&four));
        let mut moved = 0;
        for k in 0..10_000u32 {
            let h = stable_hash(&k.to_le_bytes());
            let (a, b) = (r3.pick(h).unwrap(), r4.pick(h).unwrap());
            if a != b {
                assert_eq!(b, 3, "a key may only move to the new backend");
                moved += 1;
            }
        }
        // About a quarter should move to the new backend.
        assert!((1500..3500).contains(&moved), "moved {moved}");
    }

    #[test]
    fn a_full_backends_keys_spill_to_the_same_successor() {
        let b = test_backends(&[1, 1, 1, 1]);
        let r = ring(&b);
        for key in 0..200u64 {
            let h = stable_hash(&key.to_le_bytes());
            let own = r.pick(h).expect("a pick");
            assert_eq!(r.pick_where(h, &b, |_| true), Some(own));
            let full = b[own].id;
            let spill = r.pick_where(h, &b, |x| x.id != full).expect("a spill");
            assert_ne!(spill, own);
            assert_eq!(r.pick_where(h, &b, |x| x.id != full), Some(spill));
            let last = b[3].id;
            assert_eq!(r.pick_where(h, &b, |x| x.id == last), Some(3));
            assert_eq!(r.pick_where(h, &b, |_| false), None);
        }
    }

    #[test]
    fn spread_is_even() {
        let b = test_backends(&[1, 1, 1, 1]);
        let r = ring(&b);
        let mut count = [0; 4];
        for k in 0..40_000u32 {
            count[r.pick(stable_hash(&k.to_le_bytes())).unwrap()] += 1;
        }
        assert!(
            count.iter().all(|&c| (7_000..13_000).contains(&c)),
            "{count:?}"
        );
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_weights_in_proportion() {
        // 60 backends at weight 10,000 wanted 96 million points (768 MB);
        // the ring stops at MAX_RING_POINTS with every share kept.
        let weights: Vec<u32> = (0..60)
            .map(|i| if i < 30 { 10_000 } else { 5_000 })
            .collect();
        let b = test_backends(&weights);
        let r = ring(&b);
        assert!(r.points.len() <= MAX_RING_POINTS, "{}", r.points.len());
        assert!(r.points.len() > MAX_RING_POINTS - 60, "the budget is used");
        let mut owned = [0usize; 60];
        r.points
            .iter()
            .for_each(|&p| owned[(p & INDEX_MASK) as usize] += 1);
        assert!(owned[..30].iter().all(|&c| c == owned[0]), "{owned:?}");
        assert!(owned[30..].iter().all(|&c| c == owned[30]), "{owned:?}");
        assert!(owned[0].abs_diff(2 * owned[30]) <= 1, "{owned:?}");
    }

    #[test]
    fn a_group_at_the_size_cap_gets_a_point_per_backend_at_least() {
        let b = crate::upstream::backend::many_test_backends(100_000, 10_000);
        let r = ring(&b);
        assert!(r.points.len() <= MAX_RING_POINTS);
        let mut seen = vec![false; b.len()];
        r.points
            .iter()
            .for_each(|&p| seen[(p & INDEX_MASK) as usize] = true);
        assert!(seen.iter().all(|&s| s), "every backend is on the ring");
        for k in 0..1000u32 {
            assert!(r.pick(stable_hash(&k.to_le_bytes())).unwrap() < b.len());
        }
    }

    #[test]
    fn small_rings_are_unchanged() {
        // The points of a backend are the same as before the cap: 160 per
        // weight, hashed from "address#index", so keys keep their backends
        // across an upgrade.
        let b = test_backends(&[2]);
        let r = ring(&b);
        assert_eq!(r.points.len(), 320);
        let mut first = b"10.0.0.1:80#".to_vec();
        first.extend_from_slice(&0u32.to_le_bytes());
        let top = stable_hash(&first) & !INDEX_MASK;
        assert!(r.points.iter().any(|&p| p & !INDEX_MASK == top));
    }

    #[test]
    fn cookie_key_is_found() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; sid=abc; b=2".parse().unwrap());
        let key = PickKey {
            headers: &h,
            client: crate::addr::ClientAddr(([127, 0, 0, 1], 1).into()),
        };
        assert_eq!(
            HashOn::Cookie("sid".into()).key_hash(&key),
            Some(stable_hash(b"abc"))
        );
        assert_eq!(HashOn::Cookie("nope".into()).key_hash(&key), None);
    }
}
