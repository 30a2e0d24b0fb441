//! Least outstanding requests: scan the (small) backend list for the lowest
//! in-flight count per unit of effective weight, starting at a rotating
//! offset so ties spread evenly.

use crate::upstream::backend::Backend;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct LeastConn {
    /// Effective weights, by backend index (fixed per snapshot).
    weights: Box<[u32]>,
    /// Where the next scan starts, so that ties rotate.
    ///
    /// # Concurrency
    /// Bumped by every request that picks from this snapshot, on any worker
    /// thread. `Relaxed`: it only spreads ties, and publishes nothing. The
    /// `in_flight` counts the scan reads are each a recent value, not one
    /// consistent view: two concurrent picks may both choose the same least
    /// loaded backend, which a lock would not prevent either (the requests
    /// begin after the pick).
    start: AtomicUsize,
}

impl LeastConn {
    pub fn new(weights: &[u32]) -> LeastConn {
        LeastConn {
            weights: weights.into(),
            start: AtomicUsize::new(0),
        }
    }

    pub fn pick(&self, backends: &[Arc<Backend>]) -> usize {
        self.pick_where(backends, |_| true).unwrap_or(0)
    }

    /// The least loaded of the backends `ok` accepts (all of them for
    /// [`LeastConn::pick`], where the filter compiles away).
    #[inline]
    pub fn pick_where(
        &self,
        backends: &[Arc<Backend>],
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<usize> {
        let n = backends.len();
        let start = self.start.fetch_add(1, Ordering::Relaxed) % n;
        // Compare load/weight without division: a/wa < b/wb  <=>  a*wb < b*wa.
        let load = |i: usize| {
            (
                u64::from(backends[i].in_flight()),
                u64::from(self.weights.get(i).copied().unwrap_or(1).max(1)),
            )
        };
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !ok(&backends[i]) {
                continue;
            }
            let (l, w) = load(i);
            if best.is_none_or(|(_, bl, bw)| l * bw < bl * w) {
                best = Some((i, l, w));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::test_backends;

    #[test]
    fn picks_the_least_loaded() {
        let b = test_backends(&[1, 1, 1]);
        b[0].begin_leak();
        b[0].begin_leak();
        b[2].begin_leak();
        let lc = LeastConn::new(&[1, 1, 1]);
        for _ in 0..5 {
            assert_eq!(lc.pick(&b), 1);
        }
    }

    #[test]
    fn skips_the_backends_the_filter_refuses() {
        let b = test_backends(&[1, 1, 1]);
        b[0].begin_leak();
        b[1].begin_leak();
        let lc = LeastConn::new(&[1, 1, 1]);
        let refused = b[2].id;
        for _ in 0..6 {
            let i = lc.pick_where(&b, |x| x.id != refused).expect("a pick");
            assert_ne!(i, 2, "the idle one is refused");
        }
        assert_eq!(lc.pick_where(&b, |_| false), None);
    }

    #[test]
    fn ties_rotate() {
        let b = test_backends(&[1, 1, 1]);
        let lc = LeastConn::new(&[1, 1, 1]);
        let picks: Vec<_> = (0..3).map(|_| lc.pick(&b)).collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }
}
