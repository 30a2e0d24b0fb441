//! Power of two random choices: sample two distinct backends and take the one
//! with fewer requests in flight (latency EWMA breaks ties). Near-optimal load
//! spread without scanning, and no herd onto one "best" backend.
//!
//! # Concurrency
//! No state of its own: the samples come from `fastrand`'s thread-local
//! generator (nothing shared between worker threads), and the counters it
//! compares are the backends' atomics (see `upstream::backend`).

use crate::upstream::backend::Backend;
use std::sync::Arc;

pub fn pick(backends: &[Arc<Backend>]) -> usize {
    let n = backends.len();
    if n == 1 {
        return 0;
    }
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    let (ba, bb) = (&backends[a], &backends[b]);
    let (la, lb) = (ba.in_flight(), bb.in_flight());
    if la != lb {
        return if la < lb { a } else { b };
    }
    if bb.ewma_micros() < ba.ewma_micros() {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::backend::test_backends;

    #[test]
    fn never_picks_the_most_loaded_of_two() {
        let b = test_backends(&[1, 1]);
        b[0].begin_leak();
        for _ in 0..100 {
            assert_eq!(pick(&b), 1);
        }
    }

    #[test]
    fn spreads_over_all_backends() {
        let b = test_backends(&[1, 1, 1, 1]);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[pick(&b)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
    }

    #[test]
    fn never_picks_the_busiest_of_three() {
        let b = test_backends(&[1, 1, 1]);
        for _ in 0..5 {
            b[2].begin_leak();
        }
        for _ in 0..200 {
            assert_ne!(pick(&b), 2);
        }
    }
}
