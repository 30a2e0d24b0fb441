//! A group's retry budget, after Linkerd's (and finagle's): every request on
//! a retrying route deposits `ratio` of a retry, every retry withdraws one,
//! and deposits expire after `ttl`; on top, `min_per_second × ttl` retries
//! are always allowed so that a quiet group can still retry. Over any `ttl`,
//! retries stay under `ratio × requests + min_per_second × ttl`, so retries
//! cannot multiply an outage (what a fixed attempt count alone would do).
//!
//! The window is ten slots of `ttl / 10`; a slot's balance is dropped once
//! it is a whole `ttl` old. Units are thousandths of a retry, so ratios
//! below 1 need no floating point on the request path.

use crate::config::RetryBudgetConfig;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// One retry, in the budget's units.
const RETRY: i64 = 1000;
const SLOTS: usize = 10;

#[derive(Debug)]
pub struct RetryBudget {
    pub config: RetryBudgetConfig,
    /// What each request adds: `ratio` retries, in thousandths.
    deposit: i64,
    /// Always available within a window: `min_per_second × ttl` retries.
    reserve: i64,
    slot_len: Duration,
    /// # Concurrency
    /// A `parking_lot` mutex, not tokio's: held for a few additions, never
    /// across an `.await`. Taken once per request on a route with retries
    /// (the deposit) and once per retry; routes without retries never touch it.
    window: Mutex<Window>,
    /// Retries sent, for the admin API. `Relaxed`: a statistic, read alone.
    retries: AtomicU64,
    /// Retries refused because the budget was spent. `Relaxed`, likewise.
    exhausted: AtomicU64,
}

#[derive(Debug)]
struct Window {
    /// Balance per slot: deposits minus withdrawals made in it.
    slots: [i64; SLOTS],
    current: usize,
    /// When the current slot began.
    since: Instant,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        RetryBudget {
            config,
            deposit: (config.ratio * RETRY as f64).round() as i64,
            reserve: i64::from(config.min_per_second)
                .saturating_mul(config.ttl.as_secs() as i64)
                .saturating_mul(RETRY),
            slot_len: config.ttl / SLOTS as u32,
            window: Mutex::new(Window {
                slots: [0; SLOTS],
                current: 0,
                since: Instant::now(),
            }),
            retries: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    /// A request that may be retried was sent.
    pub fn deposit(&self) {
        let mut w = self.window.lock();
        self.advance(&mut w);
        let c = w.current;
        w.slots[c] = w.slots[c].saturating_add(self.deposit);
    }

    /// Takes one retry if the budget has it; counts the retry, or the refusal.
    pub fn withdraw(&self) -> bool {
        let allowed = {
            let mut w = self.window.lock();
            self.advance(&mut w);
            let balance = w
                .slots
                .iter()
                .fold(self.reserve, |sum, s| sum.saturating_add(*s));
            let c = w.current;
            if balance >= RETRY {
                w.slots[c] -= RETRY;
            }
            balance >= RETRY
        };
        let counter = if allowed {
            &self.retries
        } else {
            &self.exhausted
        };
        counter.fetch_add(1, Ordering::Relaxed);
        allowed
    }

    /// Retries sent so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Retries refused by the budget so far.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Moves to the slot `now` falls in, clearing the slots passed over
    /// (whose balance is then a whole `ttl` old).
    fn advance(&self, w: &mut Window) {
        let passed = Instant::now().saturating_duration_since(w.since);
        let n = (passed.as_nanos() / self.slot_len.as_nanos().max(1)) as usize;
        if n == 0 {
            return;
        }
        for _ in 0..n.min(SLOTS) {
            w.current = (w.current + 1) % SLOTS;
            w.slots[w.current] = 0;
        }
        w.since += self.slot_len * n.min(u32::MAX as usize) as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32, ttl_secs: u64) -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig {
            ratio,
            min_per_second,
            ttl: Duration::from_secs(ttl_secs),
        })
    }

    fn drain(b: &RetryBudget) -> u64 {
        let mut n = 0;
        while b.withdraw() {
            n += 1;
            assert!(n < 1_000_000, "the budget never runs out");
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_alone_allows_min_per_second_times_ttl() {
        let b = budget(0.2, 10, 10);
        assert_eq!(drain(&b), 100);
        assert_eq!(b.retries(), 100);
        assert_eq!(b.exhausted(), 1);
        // Spent for a whole ttl, then whole again.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!b.withdraw());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(drain(&b), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_add_ratio_retries_each() {
        let b = budget(0.2, 0, 10);
        assert!(!b.withdraw());
        for _ in 0..1000 {
            b.deposit();
        }
        assert_eq!(drain(&b), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_ttl() {
        let b = budget(0.5, 0, 1);
        b.deposit();
        b.deposit();
        tokio::time::advance(Duration::from_millis(950)).await;
        // Still within the ttl: one retry for two requests.
        assert!(b.withdraw());
        assert!(!b.withdraw());
        b.deposit();
        b.deposit();
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(!b.withdraw(), "the deposits are more than a ttl old");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stay_under_ratio_and_floor_in_an_outage() {
        // Every request fails and asks for two retries: 600 tries without
        // a budget.
        let b = budget(0.2, 1, 10);
        let mut tries = 0;
        for _ in 0..200 {
            b.deposit();
            tries += 1;
            for _ in 0..2 {
                if b.withdraw() {
                    tries += 1;
                }
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!(tries <= 200 + 40 + 10, "{tries}");
        assert!(tries >= 200 + 40, "{tries}");
        assert_eq!(b.retries() + 200, tries);
    }

    #[test]
    fn a_zero_ratio_leaves_only_the_floor() {
        let b = budget(0.0, 0, 1);
        b.deposit();
        assert!(!b.withdraw());
    }
}
