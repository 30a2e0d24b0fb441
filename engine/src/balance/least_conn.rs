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

    /// The least loaded of the backends `ok` allows (`None` if it allows
    /// none). The request path's pick allows all, and the check compiles away.
    pub fn pick_where(
        &self,
        backends: &[Arc<Backend>],
        ok: impl Fn(&Backend) -> bool,
    ) -> Option<usize> {
        let n = backends.len();
        if n == 0 {
            return None;
        }
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
            if best.is_none_or(|(_, best_load, best_w)| l * best_w < best_load * w) {
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
            assert_eq!(lc.pick_where(&b, |_| true).unwrap(), 1);
        }
        // Picking again without it: the least loaded of the others.
        let not_1 = |x: &Backend| x.id != b[1].id;
        for _ in 0..5 {
            assert_eq!(lc.pick_where(&b, not_1), Some(2));
        }
        assert_eq!(lc.pick_where(&b, |_| false), None);
    }

    #[test]
    fn ties_rotate() {
        let b = test_backends(&[1, 1, 1]);
        let lc = LeastConn::new(&[1, 1, 1]);
        let picks: Vec<_> = (0..3)
            .map(|_| lc.pick_where(&b, |_| true).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }
}
