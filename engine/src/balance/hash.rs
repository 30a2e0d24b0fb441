//! Consistent hashing on a ring with virtual nodes (ketama style): adding a
//! backend moves only the keys that now land on it; removing one moves only
//! its own keys. The ring is built per snapshot; a pick is a binary search.

use super::PickKey;
use crate::upstream::backend::Backend;
use http::HeaderName;
use std::sync::Arc;

/// Virtual nodes per unit of weight: enough for an even spread over few backends.
const VNODES_PER_WEIGHT: u32 = 160;
const MAX_VNODES: u32 = 1 << 16;

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
    points: Box<[(u64, u32)]>,
}

impl Ring {
    pub fn new(backends: &[Arc<Backend>]) -> Ring {
        let mut points = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let vnodes = (b.weight.saturating_mul(VNODES_PER_WEIGHT)).min(MAX_VNODES);
            // The point depends on the backend's address only, never on its
            // index, so a backend keeps its points when others come and go.
            let name = b.addr.to_string();
            for r in 0..vnodes {
                let mut buf = Vec::with_capacity(name.len() + 6);
                buf.extend_from_slice(name.as_bytes());
                buf.push(b'#');
                buf.extend_from_slice(&r.to_le_bytes());
                points.push((stable_hash(&buf), i as u32));
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
        let i = self.points.partition_point(|&(p, _)| p < hash);
        let (_, b) = self.points[if i == self.points.len() { 0 } else { i }];
        Some(b as usize)
    }
}

/// FNV-1a followed by murmur3's finaliser: stable across runs and machines
/// (unlike `DefaultHasher`), so every proxy instance agrees on the ring.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::test_backends;

    #[test]
    fn a_key_keeps_its_backend_when_one_is_added() {
        let three = test_backends(&[1, 1, 1]);
        let mut four = three.clone();
        four.extend(test_backends(&[1, 1, 1, 1]).into_iter().skip(3));
        let (r3, r4) = (Ring::new(&three), Ring::new(&four));
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
    fn spread_is_even() {
        let b = test_backends(&[1, 1, 1, 1]);
        let r = Ring::new(&b);
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
