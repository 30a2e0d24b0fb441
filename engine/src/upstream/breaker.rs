//! The circuit breaker half of the per-backend state machine: a backend
//! ejected by outlier detection is *open* (out of rotation) for a cool-down
//! that doubles with each opening, up to a cap; then *half-open*, taking at
//! most `half_open_trials` trial requests at once (requests begun before
//! the ejection are no trials and take no place); `half_open_successes`
//! successful trials (whole responses) close it (back in rotation), one
//! failed trial opens it again with the next, longer cool-down, and so does
//! a trial unfinished after `half_open_timeout` (`Member::trial_overdue`).
//!
//! [`Gate`] is the part the workers touch (atomics, on the `Backend`);
//! [`Breaker`] is the part the machine keeps under the group's member lock.

use crate::config::Passive;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// `cap` when the backend is not half-open: no limit.
const UNLIMITED: u32 = u32::MAX;
/// Periods are numbered modulo 2^31 (an [`Admission`] keeps two values for
/// itself above that).
const PERIOD_MASK: u32 = 0x7fff_ffff;

/// What [`Gate::admit`] decided for one request; kept by its `InFlight`.
/// A `u32` so that the guard does not grow (it sits in every request's
/// future): the half-open period of a trial, or one of two marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission(u32);

impl Admission {
    /// Not half-open: no trial accounting.
    pub const FREE: Admission = Admission(u32::MAX);
    /// Half-open with its trials taken (or failed): pick another backend.
    pub const REFUSED: Admission = Admission(u32::MAX - 1);

    pub fn admitted(self) -> bool {
        self != Admission::REFUSED
    }

    /// The half-open period of a trial; `None` for any other request.
    pub fn trial(self) -> Option<u32> {
        (self.0 <= PERIOD_MASK).then_some(self.0)
    }
}

/// Admission of trial requests to a half-open backend, and their counts.
/// Only requests admitted as trials count against the cap: one begun
/// before the ejection (an SSE stream) never blocks the trials.
///
/// # Concurrency
/// `cap` is written by the machine under the member lock before the snapshot
/// that offers the backend is published, and cleared to 0 by the worker
/// whose trial failed (so no further trial starts before the machine
/// re-opens the breaker); read `Relaxed` by [`Gate::admit`] (the only read
/// a request pays while the backend is closed). `active` bounds the trials:
/// each racing request's `fetch_add` sees a distinct count before it, so
/// at most `cap` are admitted; it is `AcqRel`, but touched only while
/// half-open. The other counters are `Relaxed` statistics, except
/// `successes`, which the machine compares to `half_open_successes` (a
/// late increment only closes the breaker one settle later).
#[derive(Debug)]
pub struct Gate {
    cap: AtomicU32,
    /// The half-open period's number (high 32 bits) and its trials in
    /// flight (low 32), in one word: a trial of an earlier period that ends
    /// late finds another number and leaves the count alone (the machine
    /// starts each period, and ends it, at 0 with a new number).
    active: AtomicU64,
    /// Trial successes in the current half-open period (reset on entry).
    successes: AtomicU32,
    /// Totals for the admin API.
    trials: AtomicU64,
    trial_successes: AtomicU64,
    trial_failures: AtomicU64,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            cap: AtomicU32::new(UNLIMITED),
            active: AtomicU64::new(0),
            successes: AtomicU32::new(0),
            trials: AtomicU64::new(0),
            trial_successes: AtomicU64::new(0),
            trial_failures: AtomicU64::new(0),
        }
    }
}

impl Gate {
    /// Whether a request may go, and as what.
    #[inline]
    pub fn admit(&self) -> Admission {
        if self.cap.load(Ordering::Relaxed) == UNLIMITED {
            return Admission::FREE;
        }
        self.admit_trial()
    }

    #[cold]
    fn admit_trial(&self) -> Admission {
        let w = self.active.fetch_add(1, Ordering::AcqRel);
        let period = (w >> 32) as u32;
        if (w as u32) < self.cap.load(Ordering::Relaxed) {
            self.trials.fetch_add(1, Ordering::Relaxed);
            Admission(period)
        } else {
            self.release(period);
            Admission::REFUSED
        }
    }

    /// A trial of `period` is over (or was refused): its place is free,
    /// unless the machine has started another period since.
    pub fn release(&self, period: u32) {
        let mut w = self.active.load(Ordering::Acquire);
        while (w >> 32) as u32 == period && w as u32 > 0 {
            match self
                .active
                .compare_exchange_weak(w, w - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// Trials in flight in the current period.
    pub fn trials_in_flight(&self) -> u32 {
        self.active.load(Ordering::Acquire) as u32
    }

    /// Whether a trial could start now (a hint for the pick; `admit` decides).
    pub fn has_room(&self) -> bool {
        self.trials_in_flight() < self.cap.load(Ordering::Relaxed)
    }

    /// A trial of `period` succeeded (its whole response came); returns the
    /// successes of this half-open period, or `None` when the trial is of
    /// an earlier period or one of its trials failed meanwhile.
    pub fn succeeded(&self, period: u32) -> Option<u32> {
        if (self.active.load(Ordering::Acquire) >> 32) as u32 != period || self.has_failed() {
            return None;
        }
        self.trial_successes.fetch_add(1, Ordering::Relaxed);
        Some(self.successes.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// A trial failed: no more trials until the machine re-opens the breaker.
    pub fn failed(&self) {
        self.trial_failures.fetch_add(1, Ordering::Relaxed);
        self.cap.store(0, Ordering::Relaxed);
    }

    pub fn has_failed(&self) -> bool {
        self.cap.load(Ordering::Relaxed) == 0
    }

    pub fn successes(&self) -> u32 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Half-open: up to `trials` at once, in a new period. The machine only.
    pub fn half_open(&self, trials: u32) {
        self.successes.store(0, Ordering::Relaxed);
        self.next_period();
        self.cap
            .store(trials.clamp(1, UNLIMITED - 1), Ordering::Relaxed);
    }

    /// Closed or open: no trial accounting. The machine only.
    pub fn close(&self) {
        self.cap.store(UNLIMITED, Ordering::Relaxed);
        self.next_period();
    }

    /// A new period with no trials: the trials of the last one that are
    /// still running no longer count (and their ends change nothing).
    fn next_period(&self) {
        let period = ((self.active.load(Ordering::Acquire) >> 32) as u32 + 1) & PERIOD_MASK;
        self.active
            .store(u64::from(period) << 32, Ordering::Release);
    }

    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.trials.load(Ordering::Relaxed),
            self.trial_successes.load(Ordering::Relaxed),
            self.trial_failures.load(Ordering::Relaxed),
        )
    }
}

/// The breaker's memory, under the member lock.
#[derive(Clone, Debug, Default)]
pub struct Breaker {
    /// How many times it opened; the cool-down doubles with each.
    pub opened: u32,
    /// The cool-down of the latest opening.
    pub cooldown: Duration,
    /// When the current opening ends (open only).
    pub until: Option<Instant>,
}

impl Breaker {
    /// Opens for the next cool-down: `ejection × 2^(openings − 1)`, at most
    /// `max_ejection`. Returns the cool-down.
    pub fn open(&mut self, p: &Passive, now: Instant) -> Duration {
        self.opened += 1;
        let factor = 1u32 << (self.opened - 1).min(16);
        self.cooldown = p.ejection.saturating_mul(factor).min(p.max_ejection);
        self.until = Some(now + self.cooldown);
        self.cooldown
    }

    pub fn cooled(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| t <= now)
    }

    pub fn clear(&mut self) {
        self.until = None;
    }
}

/// The breaker as `GET /backends` shows it.
#[derive(Debug, Serialize)]
pub struct BreakerView {
    pub open_count: u32,
    pub cooldown_ms: u64,
    /// Time left before half-open, while open.
    pub half_open_in_ms: Option<u64>,
    pub trials: u64,
    pub trial_successes: u64,
    pub trial_failures: u64,
}

impl BreakerView {
    pub fn new(b: &Breaker, gate: &Gate, now: Instant) -> BreakerView {
        let (trials, trial_successes, trial_failures) = gate.totals();
        BreakerView {
            open_count: b.opened,
            cooldown_ms: b.cooldown.as_millis() as u64,
            half_open_in_ms: b
                .until
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
            trials,
            trial_successes,
            trial_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_its_cap_then_nothing_after_a_failure() {
        let g = Gate::default();
        assert_eq!(g.admit(), Admission::FREE, "closed: no limit");
        g.half_open(2);
        let (t1, t2) = (g.admit(), g.admit());
        assert!(t1.trial().is_some() && t2.trial().is_some());
        assert_eq!(g.admit(), Admission::REFUSED, "two trials at once at most");
        assert_eq!(g.succeeded(t1.trial().unwrap()), Some(1));
        g.release(t1.trial().unwrap());
        assert!(g.has_room());
        g.failed();
        assert!(g.has_failed() && !g.admit().admitted());
        assert_eq!(g.succeeded(t2.trial().unwrap()), None, "after a failure");
        g.half_open(2);
        assert_eq!(g.successes(), 0, "a new period counts afresh");
        assert_eq!(g.trials_in_flight(), 0);
        g.close();
        assert_eq!(g.admit(), Admission::FREE);
        assert_eq!(g.totals(), (2, 1, 1));
    }

    #[test]
    fn a_trial_of_an_earlier_period_ends_without_touching_the_next() {
        let g = Gate::default();
        g.half_open(1);
        let old = g.admit().trial().expect("a trial");
        // It never finished; the machine re-opened and half-opened again.
        g.close();
        g.half_open(1);
        let new = g.admit().trial().expect("the stuck one holds no place");
        assert_ne!(old, new);
        g.release(old);
        assert_eq!(g.trials_in_flight(), 1, "the late end freed nothing");
        assert_eq!(g.succeeded(old), None, "nor counts for this period");
        g.release(new);
        assert_eq!(g.trials_in_flight(), 0);
    }

    #[test]
    fn cooldowns_double_up_to_the_cap() {
        let p = Passive {
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            ..Passive::default()
        };
        let now = Instant::now();
        let mut b = Breaker::default();
        let got: Vec<u64> = (0..3).map(|_| b.open(&p, now).as_secs()).collect();
        assert_eq!(got, vec![10, 20, 25]);
        assert!(!b.cooled(now + Duration::from_secs(24)));
        assert!(b.cooled(now + Duration::from_secs(25)));
    }
}
