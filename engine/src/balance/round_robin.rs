//! Smooth weighted round robin from a schedule computed per pick, not
//! unrolled per backend. Lay the backends' (reduced) weights end to end on a line of `T = Σw` slots; pick number `k` takes the
//! slot whose index is `k`'s low bits reversed (the van der Corput sequence,
//! skipping the slots past `T`). Every cycle of `T` picks visits every slot
//! once, so each backend gets exactly its weight per cycle, and reversed bits
//! spread the visits to any run of slots evenly: a backend of weight `w` is
//! picked at least once every `8T/w` picks (`max_gap` below), where a plain
//! rotation over the slots would pick it `w` times in a row.
//!
//! nginx computes its smooth sequence per pick in O(n) under a lock
//! (`ngx_http_upstream_get_peer`), HAProxy keeps O(log n) trees under one
//! (`lb_fwrr.c`); the old table here was unrolled in O(Σw × n) on every
//! change. This build is O(n + min(T, 2¹⁶)) and a pick takes no lock: a
//! cycle of at most 2¹⁶ slots is unrolled into a table (the same schedule,
//! computed once: one increment and one load per pick, as fast as the old
//! table: measured equal within noise, 4 to 7 ns), a longer one is computed
//! per pick (an increment and a binary search, 20 to 45 ns; the old table
//! scaled such weights down to 2¹⁶ and lost their proportions). Equal
//! weights are a plain rotation.

use std::sync::atomic::{AtomicU64, Ordering};

/// The longest cycle: keeps `T` a `u32`, so slot arithmetic never overflows
/// (the config caps give at most `MAX_GROUP_BACKENDS × MAX_WEIGHT` = 10⁹).
const MAX_CYCLE: u64 = 1 << 32;

/// Tries before a pick stops skipping slots past `T` (see [`Smooth::pick`]).
const MAX_SKIPS: usize = 4;

/// Cycles up to this long are unrolled into a table (at most 256 KiB).
const MAX_TABLE: u64 = 1 << 16;

#[derive(Debug)]
pub struct Smooth {
    /// `ends[i]` is the sum of the reduced weights of backends `0..=i`: backend
    /// `i` owns the slots `ends[i-1]..ends[i]`. Empty when all weights are
    /// equal (backend `i` is then slot `i`).
    ends: Box<[u64]>,
    /// `T`, the slots in one cycle (0: nothing to pick).
    total: u64,
    /// `log2` of the power of two `P` with `T <= P < 2T`.
    bits: u32,
    /// The cycle unrolled, when `T <= MAX_TABLE`: pick `k` is
    /// `table[k % T]`, one increment and one load.
    table: Box<[u32]>,
    /// Picks made so far, skipped slots included.
    ///
    /// # Concurrency
    /// Bumped by every request that picks from this snapshot, on any worker
    /// thread. `Relaxed`: `fetch_add` alone gives each pick its own position
    /// (no two concurrent picks read the same one), and no other memory is
    /// published with it. It lives in the snapshot, so a new snapshot starts
    /// again at the top of its cycle. `P` divides 2⁶⁴, so wrapping is seamless.
    next: AtomicU64,
}

impl Smooth {
    /// O(n + min(T, [`MAX_TABLE`])): a gcd pass, a scaling pass (only past
    /// [`MAX_CYCLE`]), a prefix sum, and the table.
    pub fn from_weights(weights: &[u32]) -> Smooth {
        Smooth::build(weights, MAX_TABLE)
    }

    fn build(weights: &[u32], max_table: u64) -> Smooth {
        let mut w: Vec<u64> = weights.iter().map(|&w| u64::from(w.max(1))).collect();
        let g = w.iter().copied().fold(0, gcd);
        if g > 1 {
            w.iter_mut().for_each(|x| *x /= g);
        }
        let mut total: u64 = w.iter().sum();
        while total > MAX_CYCLE {
            // Only reachable past the config caps: halve until it fits.
            w.iter_mut().for_each(|x| *x = (*x / 2).max(1));
            total = w.iter().sum();
        }
        let uniform = w.iter().all(|&x| x == 1);
        let ends = if uniform {
            Box::default()
        } else {
            w.iter()
                .scan(0, |sum, &x| {
                    *sum += x;
                    Some(*sum)
                })
                .collect()
        };
        let mut smooth = Smooth {
            ends,
            total,
            bits: total.next_power_of_two().trailing_zeros(),
            table: Box::default(),
            next: AtomicU64::new(0),
        };
        if total <= max_table {
            smooth.table = smooth.unroll();
        }
        smooth
    }

    /// The cycle in pick order, in O(T + n): each slot's owner by a sweep,
    /// then the slots in the order [`Smooth::slot`] visits them.
    fn unroll(&self) -> Box<[u32]> {
        if self.ends.is_empty() {
            return (0..self.total as u32).collect();
        }
        let mut owner = Vec::with_capacity(self.total as usize);
        let mut start = 0;
        for (i, &end) in self.ends.iter().enumerate() {
            owner.extend(std::iter::repeat_n(i as u32, (end - start) as usize));
            start = end;
        }
        (0..1u64 << self.bits)
            .map(|k| self.slot(k))
            .filter(|&slot| slot < self.total)
            .map(|slot| owner[slot as usize])
            .collect()
    }

    /// The index of the next backend, or `None` when there is none.
    ///
    /// A position whose slot lies past `T` is skipped by taking another one.
    /// Since `T > P/2`, such a slot has its top bit set, so its position is
    /// odd and the next position is not skipped: a lone picker skips at most
    /// once in a row. Picks racing on other threads can take that next
    /// position, so after [`MAX_SKIPS`] a pick folds its slot into the lower
    /// half instead (a slot picked twice in that cycle, never a loop).
    pub fn pick(&self) -> Option<usize> {
        if !self.table.is_empty() {
            let k = self.next.fetch_add(1, Ordering::Relaxed) as usize;
            return Some(self.table[k % self.table.len()] as usize);
        }
        if self.total == 0 {
            return None;
        }
        if self.ends.is_empty() {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            return Some((k % self.total) as usize);
        }
        let mut slot = 0;
        for _ in 0..MAX_SKIPS {
            slot = self.slot(self.next.fetch_add(1, Ordering::Relaxed));
            if slot < self.total {
                return Some(self.owner(slot));
            }
        }
        Some(self.owner(slot & ((1 << (self.bits - 1)) - 1)))
    }

    /// The low `bits` bits of `k`, reversed (`bits >= 1`: `T >= 2` here).
    fn slot(&self, k: u64) -> u64 {
        k.reverse_bits() >> (64 - self.bits)
    }

    fn owner(&self, slot: u64) -> usize {
        self.ends.partition_point(|&end| end <= slot)
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

    fn counts(picks: &[usize], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        picks.iter().for_each(|&i| c[i] += 1);
        c
    }

    /// The most picks between two picks of `i` (wrapping around the cycle).
    fn max_gap(picks: &[usize], i: usize) -> usize {
        let at: Vec<usize> = (0..picks.len()).filter(|&k| picks[k] == i).collect();
        let wrap = at[0] + picks.len() - at[at.len() - 1];
        at.windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
            .max(wrap)
    }

    #[test]
    fn equal_weights_alternate_exactly() {
        assert_eq!(run(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
        let computed = Smooth::build(&[1, 1, 1], 0);
        let picks: Vec<usize> = (0..6).map(|_| computed.pick().unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(run(&[7, 7], 4), vec![0, 1, 0, 1], "reduced by the gcd");
    }

    #[test]
    fn every_cycle_gives_each_backend_exactly_its_weight() {
        for weights in [
            &[5, 1, 1][..],
            &[3, 1],
            &[10_000, 9_999, 1],
            &[2, 3, 5, 7, 11, 13],
            &[1, 2, 1, 2, 1, 2, 1, 100],
        ] {
            let total: usize = weights.iter().map(|&w| w as usize).sum();
            // Three cycles, and a window of one cycle at an odd offset.
            let picks = run(weights, 3 * total);
            let expected: Vec<usize> = weights.iter().map(|&w| w as usize).collect();
            for cycle in picks.chunks(total) {
                assert_eq!(counts(cycle, weights.len()), expected, "{weights:?}");
            }
            let window = &picks[total / 3..total / 3 + total];
            assert_eq!(counts(window, weights.len()), expected, "{weights:?}");
        }
    }

    #[test]
    fn weights_interleave_smoothly() {
        // nginx's example {5,1,1}: b and c are spread out, not a a a a a b c.
        let picks = run(&[5, 1, 1], 7);
        assert_eq!(picks, vec![0, 0, 0, 2, 0, 1, 0]);
        let picks = run(&[3, 1], 400);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 300);
        assert!(
            picks.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)),
            "b never twice in a row"
        );
    }

    #[test]
    fn no_backend_waits_longer_than_eight_of_its_shares() {
        let mut rng = fastrand::Rng::with_seed(14);
        for _ in 0..50 {
            let weights: Vec<u32> = (0..rng.usize(2..40)).map(|_| rng.u32(1..300)).collect();
            let s = Smooth::from_weights(&weights);
            let total = s.total as usize;
            let picks: Vec<usize> = (0..total).map(|_| s.pick().unwrap()).collect();
            let ends: Vec<u64> = std::iter::once(0).chain(s.ends.iter().copied()).collect();
            for i in 0..weights.len() {
                let w = (ends[i + 1] - ends[i]) as usize;
                let gap = max_gap(&picks, i);
                assert!(gap <= 8 * total / w, "{weights:?}: {i} waits {gap}");
            }
        }
    }

    #[test]
    fn a_large_group_at_the_weight_cap_builds_in_linear_time() {
        // 100,000 backends with weights up to the cap: the old unrolled
        // table needed 65,536 × 100,000 steps here; this is one pass.
        let weights: Vec<u32> = (0..100_000u32).map(|i| 10_000 - i % 7).collect();
        let s = Smooth::from_weights(&weights);
        assert_eq!(s.ends.len(), 100_000);
        let total = s.total;
        assert!(total < MAX_CYCLE, "no scaling needed within the caps");
        // The first picks land on backends in proportion to their weights:
        // each one-in-a-1024th of the cycle is one run of slots.
        let picks: Vec<usize> = (0..1024).map(|_| s.pick().unwrap()).collect();
        let mut distinct = picks.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 1024, "1024 picks, 1024 backends");
    }

    #[test]
    fn huge_weights_past_the_caps_are_scaled_not_dropped() {
        let mut weights = vec![u32::MAX; 3];
        weights.push(1);
        let s = Smooth::from_weights(&weights);
        assert!(s.total <= MAX_CYCLE);
        assert_eq!(s.ends[3] - s.ends[2], 1, "the light one keeps its slot");
    }

    #[test]
    fn the_table_is_the_computed_schedule() {
        for weights in [&[5, 1, 1][..], &[3, 1], &[2, 3, 5, 7, 11, 13], &[1, 1, 9]] {
            let (table, computed) = (Smooth::from_weights(weights), Smooth::build(weights, 0));
            assert!(!table.table.is_empty() && computed.table.is_empty());
            assert!(!computed.ends.is_empty(), "the weights differ");
            let total = table.total as usize;
            let a: Vec<usize> = (0..2 * total).map(|_| table.pick().unwrap()).collect();
            let b: Vec<usize> = (0..2 * total).map(|_| computed.pick().unwrap()).collect();
            assert_eq!(a, b, "{weights:?}");
        }
    }

    #[test]
    fn an_empty_group_picks_nothing() {
        assert_eq!(Smooth::from_weights(&[]).pick(), None);
    }
}
