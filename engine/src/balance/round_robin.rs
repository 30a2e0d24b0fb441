//! Smooth weighted round robin (nginx's algorithm), unrolled at build time into
//! a fixed sequence so that a pick is one atomic increment and one load.

use crate::upstream::backend::Backend;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest sequence we unroll; weights are scaled down to fit.
const MAX_SEQUENCE: u64 = 1 << 16;

#[derive(Debug)]
pub struct Smooth {
    sequence: Box<[u32]>,
    /// Picks made so far; the next pick is `sequence[next % len]`.
    ///
    /// # Concurrency
    /// Bumped by every request that picks from this snapshot, on any worker
    /// thread. `Relaxed`: `fetch_add` alone gives each pick its own position
    /// (no two concurrent picks read the same one), and no other memory is
    /// published with it. It lives in the snapshot, so a new snapshot starts
    /// again at the top of its sequence. Wrapping at `usize::MAX` only skips
    /// ahead once in the sequence.
    next: AtomicUsize,
}

impl Smooth {
    pub fn new(backends: &[Arc<Backend>]) -> Smooth {
        Smooth::from_weights(&backends.iter().map(|b| b.weight).collect::<Vec<_>>())
    }

    pub fn from_weights(weights: &[u32]) -> Smooth {
        let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
        let g = w.iter().copied().fold(0, gcd);
        if g > 1 {
            w.iter_mut().for_each(|x| *x /= g);
        }
        let total: u64 = w.iter().sum();
        if total > MAX_SEQUENCE {
            w.iter_mut()
                .for_each(|x| *x = (*x * MAX_SEQUENCE / total).max(1));
        }
        let total: i64 = w.iter().sum::<u64>() as i64;
        let mut current = vec![0i64; w.len()];
        let mut sequence = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = 0;
            for i in 0..w.len() {
                current[i] += w[i] as i64;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            sequence.push(best as u32);
        }
        Smooth {
            sequence: sequence.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn pick(&self) -> Option<usize> {
        if self.sequence.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.sequence[n % self.sequence.len()] as usize)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(weights: &[u32], n: usize) -> Vec<usize> {
        let s = Smooth::from_weights(weights);
        (0..n).map(|_| s.pick().unwrap()).collect()
    }

    #[test]
    fn equal_weights_alternate_exactly() {
        assert_eq!(run(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weights_interleave_smoothly() {
        // nginx's example: {5,1,1} gives a a b a c a a, not a a a a a b c.
        assert_eq!(run(&[5, 1, 1], 7), vec![0, 0, 1, 0, 2, 0, 0]);
        let picks = run(&[3, 1], 400);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 300);
        assert!(
            picks.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)),
            "b never twice in a row"
        );
    }

    #[test]
    fn huge_weights_are_scaled_not_dropped() {
        let s = Smooth::from_weights(&[10_000, 10_000, 1]);
        assert!(s.sequence.len() as u64 <= MAX_SEQUENCE);
        assert!(s.sequence.contains(&2));
    }
}
