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
//!
//! A retry is withdrawn before its backoff and spent when it is sent
//! ([`Withdrawal::spend`]): one given up meanwhile (the client went away
//! during the backoff, or its body can no longer be replayed) goes back.

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
    /// Always available within a window: `min_per_second × ttl` retries
    /// (a sub-second part of `ttl` included).
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
    /// Slots moved on since the start: a [`Withdrawal`] knows its slot by it.
    epoch: u64,
    /// When the current slot began.
    since: Instant,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig) -> RetryBudget {
        RetryBudget {
            config,
            deposit: (config.ratio * RETRY as f64).round() as i64,
            // `as` saturates: a floor past i64 is no floor at all.
            reserve: (f64::from(config.min_per_second) * config.ttl.as_secs_f64() * RETRY as f64)
                .round() as i64,
            slot_len: config.ttl / SLOTS as u32,
            window: Mutex::new(Window {
                slots: [0; SLOTS],
                current: 0,
                epoch: 0,
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

    /// Takes one retry if the budget has it (else counts the refusal). The
    /// retry counts as sent once [`Withdrawal::spend`] says so; dropped
    /// before that, it goes back to the budget.
    pub fn withdraw(&self) -> Option<Withdrawal<'_>> {
        let epoch = {
            let mut w = self.window.lock();
            self.advance(&mut w);
            let balance = w
                .slots
                .iter()
                .fold(self.reserve, |sum, s| sum.saturating_add(*s));
            let c = w.current;
            (balance >= RETRY).then(|| {
                w.slots[c] -= RETRY;
                w.epoch
            })
        };
        if epoch.is_none() {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
        }
        epoch.map(|epoch| Withdrawal {
            budget: self,
            epoch,
            spent: false,
        })
    }

    /// Puts back a retry withdrawn in slot `epoch`, unless that slot has
    /// expired meanwhile (its withdrawal with it).
    fn refund(&self, epoch: u64) {
        let mut w = self.window.lock();
        self.advance(&mut w);
        let age = w.epoch - epoch;
        if age < SLOTS as u64 {
            let slot = (w.current + SLOTS - age as usize) % SLOTS;
            w.slots[slot] += RETRY;
        }
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
        w.epoch += n as u64;
        w.since += self.slot_len * n.min(u32::MAX as usize) as u32;
    }
}

/// One retry taken from a [`RetryBudget`], not yet sent.
#[derive(Debug)]
#[must_use = "dropped unspent, the retry goes back to the budget"]
pub struct Withdrawal<'a> {
    budget: &'a RetryBudget,
    /// The slot it was taken from.
    epoch: u64,
    spent: bool,
}

impl Withdrawal<'_> {
    /// The retry is being sent: it stays withdrawn, and counts.
    pub fn spend(mut self) {
        self.spent = true;
        self.budget.retries.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Withdrawal<'_> {
    fn drop(&mut self) {
        if !self.spent {
            self.budget.refund(self.epoch);
        }
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

    /// Withdraws and sends one retry; whether the budget had it.
    fn retry(b: &RetryBudget) -> bool {
        b.withdraw().map(Withdrawal::spend).is_some()
    }

    fn drain(b: &RetryBudget) -> u64 {
        let mut n = 0;
        while retry(b) {
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
        assert!(!retry(&b));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(drain(&b), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_add_ratio_retries_each() {
        let b = budget(0.2, 0, 10);
        assert!(!retry(&b));
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
        assert!(retry(&b));
        assert!(!retry(&b));
        b.deposit();
        b.deposit();
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(!retry(&b), "the deposits are more than a ttl old");
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
                if retry(&b) {
                    tries += 1;
                }
            }
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!(tries <= 200 + 40 + 10, "{tries}");
        assert!(tries >= 200 + 40, "{tries}");
        assert_eq!(b.retries() + 200, tries);
    }

    /// Issue 15, finding 13: the floor was `min_per_second × ttl` in whole
    /// seconds of `ttl`, so 1.5 s gave 10 retries at 10 a second, not 15.
    #[tokio::test(start_paused = true)]
    async fn the_floor_counts_a_sub_second_ttl() {
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 10,
            ttl: Duration::from_millis(1500),
        });
        assert_eq!(drain(&b), 15);
        let b = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 3,
            ttl: Duration::from_millis(2500),
        });
        assert_eq!(drain(&b), 7, "7.5 retries: 7 whole ones");
    }

    /// Issue 15, finding 13: a retry was spent before its backoff, so a
    /// client gone during the backoff still cost the group a retry.
    #[tokio::test(start_paused = true)]
    async fn a_retry_given_up_before_it_is_sent_goes_back() {
        let b = budget(0.0, 1, 10);
        let w = b.withdraw().expect("the floor has ten");
        for _ in 0..9 {
            b.withdraw().expect("nine more").spend();
        }
        assert!(b.withdraw().is_none(), "ten taken");
        drop(w);
        assert_eq!(b.retries(), 9, "the one given up was never sent");
        assert!(retry(&b), "and it is back");
        assert!(!retry(&b));
        // Given up after its slot expired: nothing to put back.
        let b = budget(1.0, 0, 1);
        b.deposit();
        let w = b.withdraw().expect("one deposited");
        tokio::time::advance(Duration::from_millis(1100)).await;
        drop(w);
        b.deposit();
        assert!(retry(&b));
        assert!(!retry(&b), "an expired withdrawal is not refunded");
    }

    #[test]
    fn a_zero_ratio_leaves_only_the_floor() {
        let b = budget(0.0, 0, 1);
        b.deposit();
        assert!(!retry(&b));
    }
}
