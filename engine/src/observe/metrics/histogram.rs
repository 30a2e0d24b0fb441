//! A histogram the request path can bump with two relaxed atomic adds and
//! no lock: fixed bucket bounds (in microseconds), one counter per bucket
//! (not cumulative: the scrape sums them) and the sum. prometheus-client's
//! own `Histogram` would do, but its `Family` finds a series under an
//! `RwLock`; ours are found by index where the request already is.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bounds of request durations, in microseconds: 1 ms to 10 s (Prometheus
/// client libraries' defaults, with 1 ms added for a fast proxy).
pub const REQUEST_BOUNDS: &[u64] = &[
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Bounds of upstream connect and first-byte times, in microseconds: from
/// 100 µs (a pooled connection's checkout or a LAN round trip) to 10 s.
pub const UPSTREAM_BOUNDS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One more than `bounds`: the last is `+Inf`.
    ///
    /// # Concurrency
    /// Every field is a statistic bumped `Relaxed` by any worker and read
    /// by the scrape: a scrape may see a request in its bucket and not yet
    /// in `sum` (or the reverse), never a torn value. The count is the sum
    /// of the buckets, so `_count` and `le="+Inf"` always agree.
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// What a scrape reads from a [`Histogram`].
#[derive(Debug, PartialEq)]
pub struct Read {
    pub sum_seconds: f64,
    pub count: u64,
    /// `(upper bound in seconds, observations in this bucket alone)`;
    /// the last bound is `f64::MAX`, which the encoder writes as `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, micros: u64) {
        // A dozen compares: cheaper than a binary search at this size.
        let i = self
            .bounds
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn read(&self) -> Read {
        let mut count = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let n = b.load(Ordering::Relaxed);
                count += n;
                let le = self.bounds.get(i).map_or(f64::MAX, |&m| m as f64 / 1e6);
                (le, n)
            })
            .collect();
        Read {
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_its_first_bound_at_or_above() {
        let h = Histogram::new(&[10, 100]);
        for m in [0, 10, 11, 100, 101, u64::MAX / 4] {
            h.observe(m);
        }
        let r = h.read();
        assert_eq!(r.count, 6);
        assert_eq!(r.buckets, vec![(10e-6, 2), (100e-6, 2), (f64::MAX, 2)]);
    }
}
