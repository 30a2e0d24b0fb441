//! Power of two random choices: sample two distinct backends and take the one
//! with fewer requests in flight per unit of effective weight, counting the
//! one about to start (latency EWMA breaks ties). Near-optimal load spread
//! without scanning, and no herd onto one "best" backend. With equal
//! weights this is the plain in-flight comparison; weights make a
//! slow-starting backend (or a lighter one) win less often.
//!
//! # Concurrency
//! No state of its own: the samples come from `fastrand`'s thread-local
//! generator (nothing shared between worker threads), and the counters it
//! compares are the backends' atomics (see `upstream::backend`).

use crate::upstream::backend::Backend;
use std::sync::Arc;

pub fn pick(backends: &[Arc<Backend>], weights: &[u32]) -> usize {
    if backends.len() == 1 {
        return 0;
    }
    let (a, b) = two(backends.len());
    better(backends, weights, a, b)
}

/// [`pick`] among the backends `ok` allows: the better of the two sampled
/// if both are, the one that is, else `None` (the caller scans).
pub fn pick_where(
    backends: &[Arc<Backend>],
    weights: &[u32],
    ok: impl Fn(&Backend) -> bool,
) -> Option<usize> {
    match backends.len() {
        0 => return None,
        1 => return ok(&backends[0]).then_some(0),
        _ => {}
    }
    let (a, b) = two(backends.len());
    match (ok(&backends[a]), ok(&backends[b])) {
        (true, true) => Some(better(backends, weights, a, b)),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => None,
    }
}

/// Two distinct indices below `n` (at least 2).
fn two(n: usize) -> (usize, usize) {
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

fn better(backends: &[Arc<Backend>], weights: &[u32], a: usize, b: usize) -> usize {
    let (ba, bb) = (&backends[a], &backends[b]);
    let w = |i: usize| u64::from(weights.get(i).copied().unwrap_or(1).max(1));
    // (la + 1) / wa against (lb + 1) / wb, without division.
    let la = (u64::from(ba.in_flight()) + 1) * w(b);
    let lb = (u64::from(bb.in_flight()) + 1) * w(a);
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
            assert_eq!(pick(&b, &[1, 1]), 1);
        }
    }

    #[test]
    fn spreads_over_all_backends() {
        let b = test_backends(&[1, 1, 1, 1]);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[pick(&b, &[1, 1, 1, 1])] += 1;
        }
        assert!(seen.iter().all(|&c| c > 0), "{seen:?}");
    }

    #[test]
    fn a_lighter_backend_wins_less_often() {
        let b = test_backends(&[1, 1]);
        let mut seen = [0; 2];
        for _ in 0..1000 {
            seen[pick(&b, &[1, 9])] += 1;
        }
        // Both idle: (0+1)×9 > (0+1)×1, so the weight-9 one always wins.
        assert_eq!(seen, [0, 1000]);
    }

    #[test]
    fn never_picks_the_busiest_of_three() {
        let b = test_backends(&[1, 1, 1]);
        for _ in 0..5 {
            b[2].begin_leak();
        }
        for _ in 0..200 {
            assert_ne!(pick(&b, &[1, 1, 1]), 2);
        }
    }
}
