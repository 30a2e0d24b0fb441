//! The circuit breaker half of the per-backend state machine: a backend
//! ejected by outlier detection is *open* (out of rotation) for a cool-down
//! that doubles with each opening, up to a cap; then *half-open*, taking at
//! most `half_open_trials` requests at once; `half_open_successes`
//! successful trials close it (back in rotation), one failed trial opens it
//! again with the next, longer cool-down.
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

/// Admission of trial requests to a half-open backend, and their counts.
///
/// # Concurrency
/// `cap` is written by the machine under the member lock before the snapshot
/// that offers the backend is published, and cleared to 0 by the worker
/// whose trial failed (so no further trial starts before the machine
/// re-opens the breaker); read `Relaxed` by [`Gate::admit`]. The bound
/// itself comes from `Backend::in_flight`'s `fetch_add`: each racing
/// request sees a distinct count before it, so at most `cap` of them are
/// admitted. The counters are `Relaxed` statistics, except `successes`,
/// which the machine compares to `half_open_successes` (a late increment
/// only closes the breaker one settle later).
#[derive(Debug)]
pub struct Gate {
    cap: AtomicU32,
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
            successes: AtomicU32::new(0),
            trials: AtomicU64::new(0),
            trial_successes: AtomicU64::new(0),
            trial_failures: AtomicU64::new(0),
        }
    }
}

impl Gate {
    /// Whether a request that found `before` requests in flight may go.
    #[inline]
    pub fn admit(&self, before: u32) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        if cap == UNLIMITED {
            return true;
        }
        let ok = before < cap;
        if ok {
            self.trials.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Whether a trial could start now (a hint for the pick; `admit` decides).
    pub fn has_room(&self, in_flight: u32) -> bool {
        in_flight < self.cap.load(Ordering::Relaxed)
    }

    /// A trial succeeded; returns the successes of this half-open period.
    pub fn succeeded(&self) -> u32 {
        self.trial_successes.fetch_add(1, Ordering::Relaxed);
        self.successes.fetch_add(1, Ordering::Relaxed) + 1
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

    /// Half-open: up to `trials` at once. The machine only.
    pub fn half_open(&self, trials: u32) {
        self.successes.store(0, Ordering::Relaxed);
        self.cap
            .store(trials.clamp(1, UNLIMITED - 1), Ordering::Relaxed);
    }

    /// Closed or open: no trial accounting. The machine only.
    pub fn close(&self) {
        self.cap.store(UNLIMITED, Ordering::Relaxed);
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
        assert!(g.admit(1_000), "closed: no limit");
        g.half_open(2);
        assert!(g.admit(0) && g.admit(1));
        assert!(!g.admit(2), "two trials at once at most");
        assert_eq!(g.succeeded(), 1);
        g.failed();
        assert!(g.has_failed() && !g.admit(0));
        g.half_open(2);
        assert_eq!(g.successes(), 0, "a new period counts afresh");
        g.close();
        assert!(g.admit(5));
        assert_eq!(g.totals(), (2, 1, 1));
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
